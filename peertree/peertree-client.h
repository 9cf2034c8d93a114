/* libpeertree — client of peertree-server
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "peertree-error.h"
#include "peertree-message.h"
#include "peertree-stream.h"

G_BEGIN_DECLS

/**
 * PEER_TREE_PROTOCOL_VERSION:
 *
 * The signalling protocol version this library speaks (see docs/protocol.md).
 */
#define PEER_TREE_PROTOCOL_VERSION 1


/**
 * peer_tree_error_from_code:
 * @code: a server error code such as `tree-not-found`
 *
 * Returns: the #PeerTreeError for a protocol error code string.
 */
PeerTreeError peer_tree_error_from_code (const char *code);

#define PEER_TREE_TYPE_CLIENT (peer_tree_client_get_type ())
G_DECLARE_FINAL_TYPE (PeerTreeClient, peer_tree_client, PEER_TREE, CLIENT, GObject)

PeerTreeClient *peer_tree_client_new (const char *uri, const char *client_id);

const char *peer_tree_client_get_uri (PeerTreeClient *self);
const char *peer_tree_client_get_client_id (PeerTreeClient *self);
gboolean peer_tree_client_is_connected (PeerTreeClient *self);
char **peer_tree_client_get_ice_servers (PeerTreeClient *self);

void peer_tree_client_connect_async (PeerTreeClient *self, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_connect_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);
void peer_tree_client_close (PeerTreeClient *self);

void peer_tree_client_request_async (PeerTreeClient *self, const char *type, JsonObject *params,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
JsonObject *peer_tree_client_request_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);

/* Trees (peertree-client-tree.c) */
void peer_tree_client_create_async (PeerTreeClient *self, const char *tree_id, guint k, guint k1,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
char *peer_tree_client_create_finish (PeerTreeClient *self, GAsyncResult *result, GError **error);
void peer_tree_client_create_with_data_key_async (PeerTreeClient *self, const char *tree_id,
    guint k, guint k1, const char *data_key, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
char *peer_tree_client_dup_data_key (PeerTreeClient *self, const char *tree_id);
/* finish with peer_tree_client_finish() */
void peer_tree_client_report_relay_async (PeerTreeClient *self, const char *tree_id,
    const char *relay, const char *reason, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);

void peer_tree_client_join_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_join_finish (PeerTreeClient *self, GAsyncResult *result,
    char **parent_id, guint *depth, GError **error);
void peer_tree_client_join_with_capacity_async (PeerTreeClient *self, const char *tree_id,
    gint max_children, guint max_upload_kbps, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);

/* Capacity: what a member relays, the source's bitrate, overload */
void peer_tree_client_set_capacity_async (PeerTreeClient *self, const char *tree_id,
    gint max_children, guint max_upload_kbps, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_set_bitrate_async (PeerTreeClient *self, const char *tree_id,
    guint bitrate_kbps, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data);
void peer_tree_client_report_overload_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_capacity_finish (PeerTreeClient *self, GAsyncResult *result,
    guint *max_children, char ***moved, GError **error);

void peer_tree_client_reconnect_upstream_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_reconnect_upstream_finish (PeerTreeClient *self, GAsyncResult *result,
    char **parent_id, guint *depth, GError **error);

void peer_tree_client_leave_async (PeerTreeClient *self, const char *tree_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_leave_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);

void peer_tree_client_send_sdp (PeerTreeClient *self, const char *tree_id, const char *peer_id,
    const char *type, const char *sdp);
void peer_tree_client_send_ice (PeerTreeClient *self, const char *tree_id, const char *peer_id,
    guint mline_index, const char *candidate);

/**
 * PeerTreeLinkReport:
 * @child_count: links to children that are up, or -1 if not told
 * @bitrate_kbps: kbit/s received from the parent, or -1
 * @loss_percent: packets lost on the parent link, 0 to 100, or negative if not told
 * @rtt_ms: round-trip time to the parent in ms, or -1
 * @frames_per_second: video frames per second out of the link, or negative
 *
 * What a member tells the server about its place in a tree (the `report`
 * request of docs/protocol.md), for the server's dashboard and metrics.
 * Start from %PEER_TREE_LINK_REPORT_INIT (nothing told).
 */
typedef struct {
  gint child_count;
  gint64 bitrate_kbps;
  gdouble loss_percent;
  gint64 rtt_ms;
  gdouble frames_per_second;
} PeerTreeLinkReport;

#define PEER_TREE_LINK_REPORT_INIT { -1, -1, -1.0, -1, -1.0 }

void peer_tree_client_report_async (PeerTreeClient *self, const char *tree_id,
    const PeerTreeLinkReport *report, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data);
gboolean peer_tree_client_report_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);
void peer_tree_client_send_report (PeerTreeClient *self, const char *tree_id,
    const PeerTreeLinkReport *report);

/* Identity (peertree-client-messages.c) */
void peer_tree_client_list_clients_async (PeerTreeClient *self, const char *prefix,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
GStrv peer_tree_client_list_clients_finish (PeerTreeClient *self, GAsyncResult *result,
    gboolean *more, GError **error);
void peer_tree_client_is_client_connected_async (PeerTreeClient *self, const char *client_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_is_client_connected_finish (PeerTreeClient *self, GAsyncResult *result,
    gboolean *connected, GError **error);

/* Messages */
void peer_tree_client_emit_async (PeerTreeClient *self, const char *target, const char *event,
    JsonArray *args, gboolean want_reply, guint timeout_ms, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
JsonNode *peer_tree_client_emit_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);
gboolean peer_tree_client_emit (PeerTreeClient *self, const char *target, const char *event,
    JsonArray *args);

/**
 * PeerTreeMessageFunc:
 * @client: the client
 * @message: the message
 * @user_data: user data
 *
 * Callback of peer_tree_client_connect_message_from().
 */
typedef void (*PeerTreeMessageFunc) (PeerTreeClient *client, PeerTreeMessage *message,
    gpointer user_data);
gulong peer_tree_client_connect_message_from (PeerTreeClient *self, const char *sender,
    const char *event, PeerTreeMessageFunc func, gpointer user_data, GDestroyNotify destroy);

void peer_tree_client_add_target_async (PeerTreeClient *self, const char *target,
    guint timeout_ms, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
gboolean peer_tree_client_add_target_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);

/* Rooms */
void peer_tree_client_room_join_async (PeerTreeClient *self, const char *room,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_room_leave_async (PeerTreeClient *self, const char *room,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_room_emit_async (PeerTreeClient *self, const char *room, const char *event,
    JsonArray *args, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_list_rooms_async (PeerTreeClient *self, const char *client_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
GStrv peer_tree_client_list_rooms_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);

/* Streams */
void peer_tree_client_open_stream_async (PeerTreeClient *self, const char *target,
    const char *channel, JsonArray *args, guint timeout_ms, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
GIOStream *peer_tree_client_open_stream_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);

/* Services and topics */
void peer_tree_client_provide_service_async (PeerTreeClient *self, const char *service,
    const char *const *methods, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data);
void peer_tree_client_withdraw_service_async (PeerTreeClient *self, const char *service,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_call_service_async (PeerTreeClient *self, const char *service,
    const char *method, JsonArray *args, guint timeout_ms, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data);
JsonNode *peer_tree_client_call_service_finish (PeerTreeClient *self, GAsyncResult *result,
    GError **error);
void peer_tree_client_topic_create_async (PeerTreeClient *self, const char *service,
    const char *topic, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_topic_destroy_async (PeerTreeClient *self, const char *service,
    const char *topic, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_publish_async (PeerTreeClient *self, const char *service, const char *topic,
    JsonArray *args, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_subscribe_async (PeerTreeClient *self, const char *service,
    const char *topic, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);
void peer_tree_client_unsubscribe_async (PeerTreeClient *self, const char *service,
    const char *topic, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data);

/* Finishes any of the calls above that returns no value (room join/leave,
 * provide/withdraw service, topic create/destroy, subscribe/unsubscribe);
 * for room-emit and publish, @count (nullable) receives how many clients
 * received it. */
gboolean peer_tree_client_finish (PeerTreeClient *self, GAsyncResult *result, guint *count,
    GError **error);

G_END_DECLS
