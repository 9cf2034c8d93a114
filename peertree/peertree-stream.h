/* libpeertree — a byte stream between two clients, through the server.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define PEER_TREE_TYPE_STREAM (peer_tree_stream_get_type ())
G_DECLARE_FINAL_TYPE (PeerTreeStream, peer_tree_stream, PEER_TREE, STREAM, GIOStream)

guint32 peer_tree_stream_get_id (PeerTreeStream *self);
const char *peer_tree_stream_get_peer (PeerTreeStream *self);
const char *peer_tree_stream_get_channel (PeerTreeStream *self);

G_END_DECLS
