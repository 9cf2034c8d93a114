/* peertree GStreamer elements — what peertreesink and peertreesrc share
 * between the element and the signalling
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The seam between an element and its signalling (as gst-plugins-rs'
 * webrtcsink has between element and signaller). A PtSession owns the
 * element's loop thread (PtLoop), its PeerTreeClient and the fan-out to its
 * children (PtFanout), and handles the client's signals both elements treat
 * alike:
 *
 *   error            → GST_ELEMENT_ERROR (pt_post_client_error)
 *   disconnected     → peertree-server-disconnected + a warning
 *   reconnected      → peertree-server-reconnected, then @reconnected
 *   downstream-added / -removed → the fan-out (children start at once if
 *                      @children_ready, else wait for the streams)
 *   remote-sdp / remote-ice → @remote_sdp / @remote_ice first (the parent's,
 *                      at a viewer), else the fan-out (the children's)
 *   tree-closed      → peertree-tree-closed, then @tree_closed
 *   tree-joined      → @tree_joined
 *
 * The element fills a PtSessionCallbacks for what differs (how the client
 * is made, create or join once connected, what a closed tree means) and
 * calls pt_session_start() / pt_session_stop() from its state changes.
 *
 * Threading: every callback but @get_tee (with the streams lock, any
 * thread) runs in the loop thread. The fields below are the loop thread's
 * between start and stop, but @loop (under the element's object lock, for
 * streaming threads: use pt_session_invoke()).
 */
#pragma once

#include <gst/gst.h>

#include "gstpeertreeelements.h"
#include "pt-fanout.h"
#include "pt-loop.h"
#include "pt-settings.h"
#include "peertree/peertree-client.h"

G_BEGIN_DECLS

typedef struct _PtSession PtSession;

typedef struct {
  /* The client, bound to the loop's context (made in the loop thread).
   * @client_id may be NULL. */
  PeerTreeClient *(*make_client) (GstElement *element, const gchar *server,
      const gchar *client_id);
  /* Optional: once the client and the fan-out exist: connect the element's own client
   * signals (with the element as data) and make what else it needs. */
  void (*started) (GstElement *element);
  /* Optional: before the client closes (the fan-out is gone already). */
  void (*stopping) (GstElement *element);
  /* Connected to the server: create or join the tree; @call is the
   * connection's (reuse it or pt_call_free() it). */
  void (*connected) (GstElement *element, PtCall *call);
  /* PtFanoutGetTee */
  PtFanoutGetTee get_tee;
  /* A new child can get its link now (else it waits for the streams). */
  gboolean (*children_ready) (GstElement *element);
  /* Optional: @child_id was announced again or left; the element forgets
   * what it keeps about it. */
  void (*forget_child) (GstElement *element, const gchar *child_id);
  /* Optional: remote signalling of the active tree; TRUE if the element took
   * it (else it goes to the children). */
  gboolean (*remote_sdp) (GstElement *element, const gchar *peer_id, const gchar *type,
      const gchar *sdp);
  gboolean (*remote_ice) (GstElement *element, const gchar *peer_id, guint mline,
      const gchar *candidate);
  /* tree-joined, for any tree (the element decides). */
  void (*tree_joined) (GstElement *element, const gchar *tree_id, guint depth);
  /* The active tree closed (the message is posted already); @description
   * says @reason in words. */
  void (*tree_closed) (GstElement *element, const gchar *tree_id, const gchar *reason,
      const gchar *description);
  /* Optional: the client is reconnected (the message is posted already). */
  void (*reconnected) (GstElement *element);
  /* Optional: the figures of the element's link from its parent, for the
   * periodic report (the child count is filled already). */
  void (*fill_report) (GstElement *element, PeerTreeLinkReport *report);
  /* The end of the disconnected warning, after "Lost the connection to the
   * peertree server SERVER; " */
  const gchar *disconnected_consequence;
} PtSessionCallbacks;

struct _PtSession {
  GstElement *element;          /* not a ref */
  GstDebugCategory *debug;
  const PtSessionCallbacks *callbacks;
  GMutex *streams_lock;

  /* object lock */
  PtLoop *loop;

  /* set by the element before pt_session_start(), freed at stop */
  PtLinkConfig config;
  gchar *token;                 /* the token property: sent in hello */
  gchar *tls_ca;                /* the tls-ca property: CAs for wss:// */
  guint report_interval;        /* the report-interval property (s; 0: none) */

  /* loop thread, between start and stop */
  PeerTreeClient *client;
  GCancellable *cancellable;
  PtFanout *children;
  gchar *server;                /* the server property, at start */
  gchar *active_tree;           /* the tree created or joined; the element sets it */
  gboolean own_stun, own_turn;  /* the element's stun-server/turn-server are set */
  GSource *report_timer;        /* every report_interval s, or NULL */
};

void pt_session_init (PtSession *session, GstElement *element, GstDebugCategory *debug,
    const PtSessionCallbacks *callbacks, GMutex *streams_lock);
void pt_session_clear (PtSession *session);

/* Before pt_session_start, with the element's object lock: the link
 * configuration and the client's credentials (token, tls-ca) from the
 * element's connection properties. */
void pt_session_take_settings (PtSession *session, const PtSettings *settings);

/* READY→PAUSED: starts the loop thread, publishes it, and there makes the
 * client and the fan-out and connects to @server. */
void pt_session_start (PtSession *session, const gchar *thread_name, const gchar *server,
    const gchar *client_id);
/* PAUSED→READY: in the loop, closes the fan-out, leaves the active tree
 * and closes the client; then stops the loop thread. FALSE if not started. */
gboolean pt_session_stop (PtSession *session);

/* Any thread: queues @func on the loop if it runs (TRUE); else frees @data
 * with @notify and returns FALSE. */
gboolean pt_session_invoke (PtSession *session, GSourceFunc func, gpointer data,
    GDestroyNotify notify);
/* Application thread, with the element's state lock (so that the loop is
 * not stopped meanwhile): runs @func in the loop and waits. FALSE if the
 * loop does not run. */
gboolean pt_session_invoke_sync (PtSession *session, GSourceFunc func, gpointer data);
/* Loop thread: true if @tree_id is the active tree. */
gboolean pt_session_is_active_tree (PtSession *session, const gchar *tree_id);
/* Loop thread: one "child" structure per child into the GstValueList
 * @list (pt_fanout_append_stats()), if started. */
void pt_session_append_children_stats (PtSession *session, GValue *list);

G_END_DECLS
