/* peertree GStreamer elements — the parent of a viewer, and re-parenting
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A PtUpstream holds peertreesrc's link to its parent (a receiver PtLink:
 * the parent offers, the link answers) and the re-parenting policy, the twin
 * of PtFanout (pt-fanout.h) for the other side of the element:
 *
 *  - the server names a parent (join, "upstream-changed") or a parent
 *    offers: a new link, unless the current one goes to the same parent and
 *    the offer renegotiates the same session (a new SDP session id means a
 *    new peer connection: the parent restarted, lost us, or renews its links
 *    for a new source);
 *  - the parent is lost (ICE failed, or "disconnected" for 2 s; or the
 *    application emits "reconnect-upstream"): upstream-lost is posted and a
 *    new parent asked of the server, unless the parent is the tree's source
 *    and the server waits for it ("source-lost"), or the server is away
 *    (asked again once the client is reconnected).
 *
 * It sends the link's SDP and ICE through the element's client, posts the
 * tree-joined / upstream-changed / upstream-lost element messages and tells
 * the element, through PtUpstreamCallbacks, of each new RTP src pad and of
 * each change of link (so that the element can tell the old link's buffers
 * from the new one's).
 *
 * Threading: created at start in the element's loop thread and used only
 * there (freed at stop, closing the link, before the client), except
 * @pad_added, which runs in a streaming thread of the link.
 */
#pragma once

#include <gst/gst.h>

#include "pt-link.h"
#include "peertree/peertree-client.h"

G_BEGIN_DECLS

typedef struct _PtUpstream PtUpstream;

typedef struct {
  /* streaming thread: a new RTP src pad of the link to @parent (link it
   * before returning; see PtLinkCallbacks.pad_added) */
  void (*pad_added) (GstElement *element, PtLink *parent, GstPad *pad);
  /* loop thread: the link is about to close, or a new one is about to be
   * made (no pad of the old one is linked any more after this) */
  void (*link_changed) (GstElement *element);
  /* optional, a webrtcbin thread: the link to @parent has the tree's data
   * channel (connect its signals before returning) */
  void (*data_channel) (GstElement *element, PtLink *parent, GstWebRTCDataChannel *channel);
} PtUpstreamCallbacks;

/**
 * pt_upstream_new:
 * @element: the owner, a GstBin the link's webrtcbin goes into (not a ref)
 * @debug: the owner's debug category
 * @client: the owner's client (not a ref; outlives the PtUpstream)
 * @tree_id: the owner's field holding the id of the tree it is in, read at
 *   each use (NULL: nothing is sent)
 * @config: the owner's link settings
 * @context: the owner's loop context
 * @cancellable: the owner's, cancelled at stop (not a ref; outlives it)
 * @server: the server's URL, for messages (copied)
 */
PtUpstream *pt_upstream_new (GstElement *element, GstDebugCategory *debug,
    const PtUpstreamCallbacks *callbacks, PeerTreeClient *client, gchar *const *tree_id,
    const PtLinkConfig *config, GMainContext *context, GCancellable *cancellable,
    const gchar *server);
/* Closes the link (link_changed first). */
void pt_upstream_free (PtUpstream *upstream);
/* Closes the link (link_changed first); the parent is kept. */
void pt_upstream_close (PtUpstream *upstream);

/* Client signals about the owner's tree (already filtered by tree id). */
void pt_upstream_tree_joined (PtUpstream *upstream, guint depth);
void pt_upstream_changed (PtUpstream *upstream, const gchar *tree_id, const gchar *parent_id,
    guint depth);
/* The tree's source is away: the server waits for it. */
void pt_upstream_source_lost (PtUpstream *upstream);
/* The client is reconnected: a new parent is asked for if one is needed. */
void pt_upstream_reconnected (PtUpstream *upstream);
/* "reconnect-upstream": gives the current link up and asks for a new
 * parent. FALSE if there is no parent to replace. */
gboolean pt_upstream_reconnect (PtUpstream *upstream);

/* An SDP offer from @peer_id (only a parent offers): makes @peer_id the
 * parent, with a new link unless the offer renegotiates the current link's
 * session, and notes the offer's session. TRUE if there is a link to apply
 * the offer to, with pt_upstream_set_remote_description(). */
gboolean pt_upstream_take_offer (PtUpstream *upstream, const gchar *peer_id,
    const gchar *sdp);
void pt_upstream_set_remote_description (PtUpstream *upstream, const gchar *type,
    const gchar *sdp);
/* The parent's offer has a data channel. */
gboolean pt_upstream_remote_has_data (PtUpstream *upstream);
/* Media in the parent's offer (0 without a link). */
guint pt_upstream_get_n_remote_streams (PtUpstream *upstream);
/* A candidate from @peer_id: TRUE if it is the parent's (and was given to
 * the link). */
gboolean pt_upstream_add_remote_candidate (PtUpstream *upstream, const gchar *peer_id,
    guint mline, const gchar *candidate);

/* depth, parent-id, upstream-state, upstream-ice-restarts, upstream-webrtc (webrtcbin's
 * statistics; blocks until webrtcbin answers) and upstream-repair
 * (pt_link_get_repair_stats()) into @s. */
void pt_upstream_append_stats (PtUpstream *upstream, GstStructure *s);
/* The parent link's figures for a report: received bitrate and loss since
 * the previous call (on the same link), the RTT a repair measured. Blocks
 * until webrtcbin answers get-stats (the loop thread). Leaves @report alone
 * without a connected link. */
void pt_upstream_fill_report (PtUpstream *upstream, PeerTreeLinkReport *report);
/* Loop thread: the packets lost (after repair, see
 * pt_webrtc_stats_inbound_counts) and received so far on the
 * link to the parent, and that link (to tell a new one from the last);
 * FALSE without a connected link or statistics. */
gboolean pt_upstream_sample_counts (PtUpstream *upstream, guint64 *lost, guint64 *received,
    gconstpointer *link);

G_END_DECLS
