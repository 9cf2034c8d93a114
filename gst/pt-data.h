/* peertree GStreamer elements — data down the tree, signed by the source
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A PtDataHub is an element's end of the tree's data: the WebRTC data
 * channel of its parent link (a viewer) and those of its child links. The
 * source publishes messages, each signed with its Ed25519 key (GnuTLS); a
 * viewer verifies each message from its parent against the tree's public key
 * and its sequence number against the last it delivered, then delivers it
 * and forwards the same bytes to its children. It keeps the last messages
 * (a bounded window) and, when a child opens a link and says the last number
 * it has (RESUME), sends what followed before the live messages. The wire
 * format is in docs/protocol.md (Data down the tree).
 *
 * Threading: every function may be called from any thread (one lock).
 * The callbacks run in the thread of the parent's data channel (webrtcbin's),
 * one at a time and in sequence order, without the hub's lock.
 */
#pragma once

#include <gst/gst.h>

#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>

G_BEGIN_DECLS

#define PT_DATA_CHANNEL_LABEL "peertree-data"
/* the largest payload of one message */
#define PT_DATA_MAX_PAYLOAD 65536
/* the longest caps string a message declares */
#define PT_DATA_MAX_CAPS 1024
/* the channel of the send-data action signal (no pad) */
#define PT_DATA_SIGNAL_CHANNEL 65535
/* what a node keeps to resend after a re-parenting */
#define PT_DATA_WINDOW_MESSAGES 1024
#define PT_DATA_WINDOW_BYTES (4 * 1024 * 1024)
/* bytes queued on one child's channel beyond which its messages are dropped
 * (it is told how many it lost) */
#define PT_DATA_CHILD_MAX_BUFFERED (16 * 1024 * 1024)

typedef struct _PtDataHub PtDataHub;

typedef struct {
  /* a verified message, in order */
  void (*deliver) (gpointer user_data, guint64 seq, guint channel, const gchar *caps,
      GstClockTime pts, GBytes *payload);
  /* @count messages before @seq will never come (beyond the parent's window,
   * or dropped by a partially reliable channel) */
  void (*lost) (gpointer user_data, guint64 seq, guint64 count);
  /* a message from @parent_id failed: @reason is "forged" or "replayed"
   * (once per parent link; its messages are dropped from then on) */
  void (*rejected) (gpointer user_data, const gchar *parent_id, const gchar *reason,
      const gchar *detail);
} PtDataCallbacks;

/* Tests only: what a relay does to what it forwards. */
typedef enum {
  PT_DATA_TAMPER_NONE,
  PT_DATA_TAMPER_FLIP,          /* flips a bit of each payload */
  PT_DATA_TAMPER_REPLAY,        /* sends each message twice */
  PT_DATA_TAMPER_DROP,          /* forwards nothing (a stalled relay) */
  PT_DATA_TAMPER_INJECT,        /* adds a message of its own after each one */
} PtDataTamper;

/* The object data key of the test hook on an element (a PtDataTamper). */
#define PT_DATA_TAMPER_KEY "peertree-test-tamper-data"
/* Tests only: the object data key of a smaller window (messages, a guint). */
#define PT_DATA_WINDOW_KEY "peertree-test-data-window"

/* Element message names. */
#define PT_MESSAGE_DATA_LOST "peertree-data-lost"          /* seq, count */
#define PT_MESSAGE_DATA_REJECTED "peertree-data-rejected"  /* parent-id, reason, detail */

PtDataHub *pt_data_hub_new (const PtDataCallbacks *callbacks, gpointer user_data);
PtDataHub *pt_data_hub_ref (PtDataHub *hub);
void pt_data_hub_unref (PtDataHub *hub);
/* Forgets every channel; no callback runs after this returns (one under way
 * is waited for). The owner calls it before its last unref: each channel's
 * handler holds a ref. */
void pt_data_hub_close (PtDataHub *hub);

/* The source: makes a new Ed25519 key pair; returns the public key, base64
 * (transfer full), or NULL with @error set. */
gchar *pt_data_hub_make_key (PtDataHub *hub, GError **error);
/* The source: the tree it signs for (its id is part of what is signed). */
void pt_data_hub_set_tree (PtDataHub *hub, const gchar *tree_id);
/* A member: the tree and its public key (base64) to verify against. A new
 * key (a restarted source) starts the numbering again, here and for the
 * children. */
gboolean pt_data_hub_set_key (PtDataHub *hub, const gchar *tree_id, const gchar *key_b64,
    GError **error);
gboolean pt_data_hub_has_key (PtDataHub *hub);
/* A member: where a timer retries a RESUME its parent's channel did not
 * take when it opened (until pt_data_hub_close()). */
void pt_data_hub_set_context (PtDataHub *hub, GMainContext *context);
void pt_data_hub_set_tamper (PtDataHub *hub, PtDataTamper tamper);
/* The test hooks of @element (PT_DATA_TAMPER_KEY, PT_DATA_WINDOW_KEY). */
void pt_data_hub_apply_test_hooks (PtDataHub *hub, GObject *element);

/* The source: signs, keeps and sends one message to every child. FALSE with
 * @error set if the hub has no private key, or the message is too large. */
gboolean pt_data_hub_publish (PtDataHub *hub, guint channel, const gchar *caps,
    GstClockTime pts, const guint8 *data, gsize size, GError **error);

/* A child's link has @channel (the sender link's, made before the offer):
 * the child is sent nothing until it says where it is (RESUME). */
void pt_data_hub_add_child (PtDataHub *hub, const gchar *child_id,
    GstWebRTCDataChannel *channel);
void pt_data_hub_remove_child (PtDataHub *hub, const gchar *child_id);
/* The parent link's channel (NULL: no parent link). A new one is told the
 * last sequence number delivered as soon as it is open. */
void pt_data_hub_set_parent (PtDataHub *hub, const gchar *parent_id,
    GstWebRTCDataChannel *channel);
/* The parent's channel settings (ordered, max-retransmits: -1 reliable), if
 * there is one; for the children's. */
gboolean pt_data_hub_get_parent_reliability (PtDataHub *hub, gboolean *ordered,
    gint *max_retransmits);

/* Counters into a "data" structure: published, received, delivered, forged,
 * replayed, lost, resent, dropped (to slow children), last-seq,
 * window-messages, window-bytes, children, live-children, parent-open, and
 * with a parent channel parent-ordered and parent-max-retransmits. */
GstStructure *pt_data_hub_get_stats (PtDataHub *hub);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PtDataHub, pt_data_hub_unref)

G_END_DECLS
