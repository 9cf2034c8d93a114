/* libpeertree internals shared between the client, messages and streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "peertree-client.h"
#include "peertree-message.h"
#include "peertree-stream.h"

enum { PT_OP_DATA = 0, PT_OP_CREDIT = 1, PT_OP_END = 2, PT_OP_RESET = 3 };
#define PT_MAX_FRAME_PAYLOAD (60 * 1024)

typedef enum {
  PT_MESSAGE_EVENT,
  PT_MESSAGE_TARGET_REQUEST,
  PT_MESSAGE_STREAM_REQUEST,
  PT_MESSAGE_SERVICE_CALL,
} PtMessageKind;

/* peertree-client.c */
GMainContext *_peer_tree_client_get_context (PeerTreeClient *self);
void _peer_tree_client_send_reply (PeerTreeClient *self, gint64 ack_id, gboolean ok,
    JsonNode *value, const char *message);
gboolean _peer_tree_client_send_frame (PeerTreeClient *self, guint32 stream_id, guint8 op,
    const void *data, gsize len);
void _peer_tree_client_add_stream (PeerTreeClient *self, PeerTreeStream *stream);
void _peer_tree_client_remove_stream (PeerTreeClient *self, guint32 stream_id);

/* peertree-message.c */
PeerTreeMessage *_peer_tree_message_new (PeerTreeClient *client, PtMessageKind kind,
    JsonObject *event);

/* peertree-stream.c */
PeerTreeStream *_peer_tree_stream_new (PeerTreeClient *client, guint32 id, const char *peer,
    const char *channel, gsize window);
void _peer_tree_stream_receive (PeerTreeStream *self, guint8 op, GBytes *payload);
void _peer_tree_stream_fail (PeerTreeStream *self, const char *why);
