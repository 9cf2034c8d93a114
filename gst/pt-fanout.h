/* peertree GStreamer elements — the children of an element
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A PtFanout holds the children (downstream peers) of peertreesink or
 * peertreesrc: one sender PtLink per child, fed from the element's relay
 * tees, and the children the server announced while the streams were not
 * ready yet. It sends the links' SDP and ICE through the element's client,
 * routes the remote ones to them, reaps a child whose link fails and posts
 * the child-added / child-removed element messages.
 *
 * Created at start in the element's loop thread and used only there; freed
 * (closing every link) at stop, before the client.
 */
#pragma once

#include <gst/gst.h>

#include "pt-link.h"
#include "peertree/peertree-client.h"

G_BEGIN_DECLS

typedef struct _PtFanout PtFanout;

/* The relay tee of the owner's stream @index if children can be given it,
 * NULL if there is no such stream or it is not ready (the streams after it
 * wait too). Called with the owner's streams lock. */
typedef GstElement *(*PtFanoutGetTee) (GstElement *element, guint index);

/**
 * pt_fanout_new:
 * @element: the owner, a GstBin the links' webrtcbins go into (not a ref)
 * @debug: the owner's debug category, for the fan-out's logs
 * @streams_lock: the owner's lock guarding what @get_tee reads
 * @client: the owner's client (not a ref; outlives the fan-out)
 * @tree_id: the owner's field holding the id of the tree it is in, read at
 *   each use (NULL: nothing is sent)
 * @config: the owner's link settings, for each new link
 * @context: the owner's loop context, where link callbacks run
 */
PtFanout *pt_fanout_new (GstElement *element, GstDebugCategory *debug,
    GMutex *streams_lock, PtFanoutGetTee get_tee, PeerTreeClient *client,
    gchar *const *tree_id, const PtLinkConfig *config, GMainContext *context);
/* Closes every link (no message). */
void pt_fanout_free (PtFanout *fanout);
/* The tree carries data: each child link made from now on has a data
 * channel, given to @hub (NULL: none). */
void pt_fanout_set_data (PtFanout *fanout, PtDataHub *hub);

/* The server gave the owner child @child_id: an earlier child of that id is
 * removed ("rejoined"), one still waiting is forgotten; the new one is
 * started (child-added) if @ready, else it waits for
 * pt_fanout_start_waiting(). */
void pt_fanout_add (PtFanout *fanout, const gchar *child_id, gboolean ready);
/* Creates the child's link with every ready stream and starts it; posts
 * child-added if @announce. A failure is a warning; the child is dropped. */
void pt_fanout_start_child (PtFanout *fanout, const gchar *child_id, gboolean announce);
/* Starts every waiting child (the streams are ready). */
void pt_fanout_start_waiting (PtFanout *fanout);
/* Offers the streams that became ready since to the existing children
 * (renegotiation). */
void pt_fanout_add_streams (PtFanout *fanout);
/* Closes the child's link and posts child-removed with @reason, if it is a
 * child. */
void pt_fanout_remove (PtFanout *fanout, const gchar *child_id, const gchar *reason);
/* Forgets @child_id if it waits. */
void pt_fanout_forget (PtFanout *fanout, const gchar *child_id);
/* Closes every child's link without a message; returns their ids (transfer
 * full, g_free elements). */
GPtrArray *pt_fanout_drop_children (PtFanout *fanout);
/* Drops every child and every waiting one, without a message. */
void pt_fanout_clear (PtFanout *fanout);

/* Remote signalling from @peer_id, if it is a child. An SDP from anyone
 * else is a warning; a candidate is ignored. */
void pt_fanout_set_remote_description (PtFanout *fanout, const gchar *peer_id,
    const gchar *type, const gchar *sdp);
void pt_fanout_add_remote_candidate (PtFanout *fanout, const gchar *peer_id, guint mline,
    const gchar *candidate);

/* Appends to the GstValueList @list one "child" structure per child:
 * child-id, state, n-streams, ice-restarts and webrtc (webrtcbin's statistics; blocks
 * until webrtcbin answers). */
void pt_fanout_append_stats (PtFanout *fanout, GValue *list);
/* Children whose link is connected. */
guint pt_fanout_n_connected (PtFanout *fanout);

/* What each connected child lost, from its last RTCP receiver reports:
 * child id -> gdouble* (highest fraction lost over its streams), for those
 * that sent one (blocks on webrtcbin's statistics, as above). */
GHashTable *pt_fanout_sample_loss (PtFanout *fanout);

G_END_DECLS
