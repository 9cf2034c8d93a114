/* libpeertree — an incoming message, target request, stream request or
 * service call, which the receiver may answer.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define PEER_TREE_TYPE_MESSAGE (peer_tree_message_get_type ())
G_DECLARE_FINAL_TYPE (PeerTreeMessage, peer_tree_message, PEER_TREE, MESSAGE, GObject)

const char *peer_tree_message_get_sender (PeerTreeMessage *self);
const char *peer_tree_message_get_name (PeerTreeMessage *self);
const char *peer_tree_message_get_room (PeerTreeMessage *self);
const char *peer_tree_message_get_service (PeerTreeMessage *self);
JsonArray *peer_tree_message_get_args (PeerTreeMessage *self);
gboolean peer_tree_message_expects_reply (PeerTreeMessage *self);
void peer_tree_message_reply (PeerTreeMessage *self, JsonNode *value);
void peer_tree_message_reply_error (PeerTreeMessage *self, const char *message);
GIOStream *peer_tree_message_accept_stream (PeerTreeMessage *self);

G_END_DECLS
