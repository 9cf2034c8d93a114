/* peertree GStreamer elements — plugin-private declarations
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <gst/gst.h>

#include "pt-loop.h"
#include "peertree/peertree-client.h"

G_BEGIN_DECLS

#define GST_TYPE_PEER_TREE_SINK (gst_peer_tree_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstPeerTreeSink, gst_peer_tree_sink, GST, PEER_TREE_SINK, GstBin)

#define GST_TYPE_PEER_TREE_SRC (gst_peer_tree_src_get_type ())
G_DECLARE_FINAL_TYPE (GstPeerTreeSrc, gst_peer_tree_src, GST, PEER_TREE_SRC, GstBin)

/**
 * GstPeerTreeVideoCodec:
 * Codec peertreesink encodes raw video to.
 */
typedef enum {
  GST_PEER_TREE_VIDEO_CODEC_VP8,
  GST_PEER_TREE_VIDEO_CODEC_H264,
} GstPeerTreeVideoCodec;

#define GST_TYPE_PEER_TREE_VIDEO_CODEC (gst_peer_tree_video_codec_get_type ())
GType gst_peer_tree_video_codec_get_type (void);

/**
 * GstPeerTreeLatencyMode:
 * @GST_PEER_TREE_LATENCY_ADAPTIVE: the jitterbuffer latency follows the
 *   parent link: clamp (2 × repair RTT + 150 ms, 150 ms, latency).
 * @GST_PEER_TREE_LATENCY_FIXED: always `latency`.
 */
typedef enum {
  GST_PEER_TREE_LATENCY_ADAPTIVE,
  GST_PEER_TREE_LATENCY_FIXED,
} GstPeerTreeLatencyMode;

#define GST_TYPE_PEER_TREE_LATENCY_MODE (gst_peer_tree_latency_mode_get_type ())
GType gst_peer_tree_latency_mode_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (peertreesink);
GST_ELEMENT_REGISTER_DECLARE (peertreesrc);

/* Element message names (structure names of GST_MESSAGE_ELEMENT). */
/* tree-id, client-id, parent-id (NULL for the source), depth (0 = source) */
#define PT_MESSAGE_TREE_JOINED "peertree-tree-joined"
#define PT_MESSAGE_CHILD_ADDED "peertree-child-added"          /* tree-id, child-id */
#define PT_MESSAGE_CHILD_REMOVED "peertree-child-removed"      /* tree-id, child-id, reason */
/* tree-id, client-id, parent-id, depth: a new parent after the join */
#define PT_MESSAGE_UPSTREAM_CHANGED "peertree-upstream-changed"
/* tree-id, reason, description; peertreesrc then ends its streams with EOS */
#define PT_MESSAGE_TREE_CLOSED "peertree-tree-closed"
/* tree-id, parent-id, reason: the parent is unreachable, a new one is asked for */
#define PT_MESSAGE_UPSTREAM_LOST "peertree-upstream-lost"
/* tree-id, grace (s): the source is away; the tree waits that long for it */
#define PT_MESSAGE_SOURCE_LOST "peertree-source-lost"
/* tree-id, max-children (what the server lets it have now), moved-child (if
 * one was moved): this relay's children kept losing packets while its parent
 * link was clean, it told the server it was overloaded */
#define PT_MESSAGE_OVERLOADED "peertree-overloaded"
/* server: the signalling connection dropped / is back (links are kept) */
#define PT_MESSAGE_SERVER_DISCONNECTED "peertree-server-disconnected"
#define PT_MESSAGE_SERVER_RECONNECTED "peertree-server-reconnected"

/* ---- helpers shared by both elements (pt-common.c) ---- */

/* An async libpeertree call of an element. The element's cancellable is
 * never given to libpeertree (cancelling a pending request from the
 * client's own context deadlocks in g_cancellable_disconnect); the call
 * keeps it instead and its callback drops a result that comes after stop. */
typedef struct {
  GstElement *self;             /* a ref */
  GCancellable *cancellable;    /* a ref */
} PtCall;

PtCall *pt_call_new (gpointer element, GCancellable * cancellable);
/* TRUE if the element stopped since the call was made. */
gboolean pt_call_stopped (PtCall * call);
void pt_call_free (PtCall * call);

/* Stop, in the loop thread: disconnects @data's handlers from *@client,
 * leaves @tree_id (if set), closes the client and clears *@client. */
void pt_client_close (PeerTreeClient **client, gpointer data, const gchar *tree_id);

/* Posts an element message built from a NULL-terminated field list. */
void pt_post_element_message (GstElement *element, const gchar *name,
    const gchar *first_field, ...) G_GNUC_NULL_TERMINATED;

/* Turns a PeerTreeClient GError into GST_ELEMENT_ERROR with a message a user
 * understands (server unreachable, tree not found, refused…). */
void pt_post_client_error (GstElement *element, const GError *error,
    const gchar *what, const gchar *server, const gchar *tree_id);

/* Best-ranked element of @type whose @direction template accepts @caps, or
 * NULL. (transfer floating) */
GstElement *pt_make_element_for_caps (GstElementFactoryListType type,
    GstPadDirection direction, const GstCaps *caps);

/* First of @names (NULL-terminated) that is not installed, or NULL. */
const gchar *pt_find_missing_element (const gchar *const *names);
/* At NULL→READY: if @missing (from pt_find_missing_element()) is set, posts
 * the missing-element message and GST_ELEMENT_ERROR and returns FALSE. */
gboolean pt_check_missing_element (GstElement * element, const gchar * missing);

G_END_DECLS
