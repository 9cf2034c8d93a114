/* libpeertree — client-to-client messages, rooms, streams, services, topics.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each call is one request of docs/protocol.md. Calls without a value to
 * return complete with peer_tree_client_finish().
 */
#include "peertree-client-private.h"

static JsonObject *
params_new (const char *first_name, ...)
{
  JsonObject *params = json_object_new ();
  va_list ap;
  va_start (ap, first_name);
  for (const char *name = first_name; name; name = va_arg (ap, const char *)) {
    const char *value = va_arg (ap, const char *);
    if (value)
      json_object_set_string_member (params, name, value);
  }
  va_end (ap);
  return params;
}

static void
set_args (JsonObject *params, JsonArray *args)
{
  if (args)
    json_object_set_array_member (params, PT_F_ARGS, json_array_ref (args));
}

static void
set_timeout (JsonObject *params, guint timeout_ms)
{
  if (timeout_ms)
    json_object_set_int_member (params, PT_F_TIMEOUT, timeout_ms);
}

static void
request (PeerTreeClient *self, const char *type, JsonObject *params /* transfer full */,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  peer_tree_client_request_async (self, type, params, cancellable, callback, user_data);
  json_object_unref (params);
}

static GStrv
string_list (JsonObject *result, const char *member)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  JsonNode *node = json_object_get_member (result, member);
  JsonArray *array = node && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  for (guint i = 0; array && i < json_array_get_length (array); i++) {
    JsonNode *e = json_array_get_element (array, i);
    if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING)
      g_strv_builder_add (builder, json_node_get_string (e));
  }
  return g_strv_builder_end (builder);
}

static JsonNode *
value_of (JsonObject *result)
{
  JsonNode *value = json_object_get_member (result, PT_F_VALUE);
  return value ? json_node_copy (value) : json_node_init_null (json_node_alloc ());
}

/**
 * peer_tree_client_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult of a call that returns no value
 * @count: (out) (optional): for room-emit and publish, how many clients
 *   received it
 * @error: return location for a #GError
 *
 * Completes peer_tree_client_room_join_async(),
 * peer_tree_client_room_leave_async(), peer_tree_client_room_emit_async(),
 * peer_tree_client_provide_service_async(),
 * peer_tree_client_withdraw_service_async(),
 * peer_tree_client_topic_create_async(),
 * peer_tree_client_topic_destroy_async(), peer_tree_client_publish_async(),
 * peer_tree_client_subscribe_async() and
 * peer_tree_client_unsubscribe_async().
 *
 * Returns: %TRUE on success.
 */
gboolean
peer_tree_client_finish (PeerTreeClient *self, GAsyncResult *result, guint *count, GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  if (!r)
    return FALSE;
  if (count)
    *count = (guint) pt_int (r, PT_F_DELIVERED, 0);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Identity                                                                 */

/**
 * peer_tree_client_list_clients_async:
 * @self: a #PeerTreeClient
 * @prefix: (nullable): only clientIds starting with it
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Lists connected clients (at most 1000 per call; see the @more out
 * parameter of peer_tree_client_list_clients_finish()).
 */
void
peer_tree_client_list_clients_async (PeerTreeClient *self, const char *prefix,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_LIST_CLIENTS, params_new (PT_F_PREFIX, prefix, NULL), cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_list_clients_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @more: (out) (optional): set to %TRUE when the list was cut at 1000
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the clientIds, or %NULL with @error set.
 */
GStrv
peer_tree_client_list_clients_finish (PeerTreeClient *self, GAsyncResult *result, gboolean *more,
    GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  if (!r)
    return NULL;
  if (more)
    *more = pt_bool (r, PT_F_MORE);
  return string_list (r, PT_F_CLIENTS);
}

/**
 * peer_tree_client_is_client_connected_async:
 * @self: a #PeerTreeClient
 * @client_id: the client to ask about
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Asks the server whether a client is connected.
 */
void
peer_tree_client_is_client_connected_async (PeerTreeClient *self, const char *client_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_IS_CONNECTED, params_new (PT_F_CLIENT_ID, client_id, NULL), cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_is_client_connected_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @connected: (out): whether the client is connected
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the server answered.
 */
gboolean
peer_tree_client_is_client_connected_finish (PeerTreeClient *self, GAsyncResult *result,
    gboolean *connected, GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  if (!r)
    return FALSE;
  *connected = pt_bool (r, PT_F_CONNECTED);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

/**
 * peer_tree_client_emit_async:
 * @self: a #PeerTreeClient
 * @target: the clientId to deliver to
 * @event: the event name (the receiver's #PeerTreeClient::message detail)
 * @args: (nullable): the arguments
 * @want_reply: wait for the receiver's peer_tree_message_reply()
 * @timeout_ms: how long the server waits for that reply (0: 10 s; at most 120 s)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Sends an event to one client. An unknown or disconnected target fails
 * with %PEER_TREE_ERROR_NOT_FOUND; a refusal with %PEER_TREE_ERROR_REMOTE;
 * no reply in time with %PEER_TREE_ERROR_TIMEOUT; a target that disconnects
 * before replying with %PEER_TREE_ERROR_DISCONNECTED.
 */
void
peer_tree_client_emit_async (PeerTreeClient *self, const char *target, const char *event,
    JsonArray *args, gboolean want_reply, guint timeout_ms, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  JsonObject *params = params_new (PT_F_TO, target, PT_F_EVENT, event, NULL);
  set_args (params, args);
  if (want_reply)
    json_object_set_boolean_member (params, PT_F_ACK, TRUE);
  set_timeout (params, timeout_ms);
  request (self, PT_REQ_EMIT, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_emit_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the receiver's reply value (JSON null when no
 *   reply was wanted), or %NULL with @error set.
 */
JsonNode *
peer_tree_client_emit_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  return r ? value_of (r) : NULL;
}

typedef struct {
  char *sender;
  PeerTreeMessageFunc func;
  gpointer user_data;
  GDestroyNotify destroy;
} FromFilter;

static void
from_filter_free (gpointer data, GClosure *closure)
{
  FromFilter *f = data;
  if (f->destroy)
    f->destroy (f->user_data);
  g_free (f->sender);
  g_free (f);
}

static void
on_message_from (PeerTreeClient *client, PeerTreeMessage *message, FromFilter *f)
{
  if (g_strcmp0 (peer_tree_message_get_sender (message), f->sender) == 0)
    f->func (client, message, f->user_data);
}

/**
 * peer_tree_client_connect_message_from:
 * @self: a #PeerTreeClient
 * @sender: only messages from this clientId
 * @event: (nullable): only this event name (%NULL: every event)
 * @func: called for each matching message
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when the handler is disconnected
 *
 * Listens to messages from one client: a #PeerTreeClient::message handler
 * that filters on the sender.
 *
 * Returns: the handler id, for g_signal_handler_disconnect().
 */
gulong
peer_tree_client_connect_message_from (PeerTreeClient *self, const char *sender,
    const char *event, PeerTreeMessageFunc func, gpointer user_data, GDestroyNotify destroy)
{
  g_return_val_if_fail (PEER_TREE_IS_CLIENT (self), 0);
  g_return_val_if_fail (sender != NULL && func != NULL, 0);
  FromFilter *f = g_new0 (FromFilter, 1);
  f->sender = g_strdup (sender);
  f->func = func;
  f->user_data = user_data;
  f->destroy = destroy;
  g_autofree char *signal = event ? g_strdup_printf ("message::%s", event) : g_strdup ("message");
  return g_signal_connect_data (self, signal, G_CALLBACK (on_message_from), f, from_filter_free, 0);
}

/**
 * peer_tree_client_add_target_async:
 * @self: a #PeerTreeClient
 * @target: the client to pair with
 * @timeout_ms: how long to wait for its answer (0: 10 s)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Pairs with another client, which is asked through
 * #PeerTreeClient::target-request. Once accepted, each side gets
 * #PeerTreeClient::target-disconnected when the other disconnects.
 */
void
peer_tree_client_add_target_async (PeerTreeClient *self, const char *target, guint timeout_ms,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  JsonObject *params = params_new (PT_F_TARGET, target, NULL);
  set_timeout (params, timeout_ms);
  request (self, PT_REQ_ADD_TARGET, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_add_target_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: %TRUE once the target accepted.
 */
gboolean
peer_tree_client_add_target_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  return peer_tree_client_finish (self, result, NULL, error);
}

/* ------------------------------------------------------------------------ */
/* Rooms                                                                    */

/**
 * peer_tree_client_room_join_async:
 * @self: a #PeerTreeClient
 * @room: the room
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Joins a room (joining twice is harmless). Memberships end with the
 * connection.
 */
void
peer_tree_client_room_join_async (PeerTreeClient *self, const char *room,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_ROOM_JOIN, params_new (PT_F_ROOM, room, NULL), cancellable, callback, user_data);
}

/**
 * peer_tree_client_room_leave_async:
 * @self: a #PeerTreeClient
 * @room: the room
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Leaves a room (%PEER_TREE_ERROR_NOT_MEMBER if not in it).
 */
void
peer_tree_client_room_leave_async (PeerTreeClient *self, const char *room,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_ROOM_LEAVE, params_new (PT_F_ROOM, room, NULL), cancellable, callback, user_data);
}

/**
 * peer_tree_client_room_emit_async:
 * @self: a #PeerTreeClient
 * @room: a room this client is in
 * @event: the event name
 * @args: (nullable): the arguments
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish(),
 *   whose count says how many members received it
 * @user_data: data for @callback
 *
 * Sends an event to every other member of a room.
 */
void
peer_tree_client_room_emit_async (PeerTreeClient *self, const char *room, const char *event,
    JsonArray *args, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  JsonObject *params = params_new (PT_F_ROOM, room, PT_F_EVENT, event, NULL);
  set_args (params, args);
  request (self, PT_REQ_ROOM_EMIT, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_list_rooms_async:
 * @self: a #PeerTreeClient
 * @client_id: (nullable): whose rooms (%NULL: this client's)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Lists the rooms a client is in.
 */
void
peer_tree_client_list_rooms_async (PeerTreeClient *self, const char *client_id,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_LIST_ROOMS, params_new (PT_F_CLIENT_ID, client_id, NULL), cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_list_rooms_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the room names, sorted, or %NULL with @error set.
 */
GStrv
peer_tree_client_list_rooms_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  return r ? string_list (r, PT_F_ROOMS) : NULL;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

typedef struct {
  char *target, *channel;
} OpenData;

static void
open_data_free (OpenData *d)
{
  g_free (d->target);
  g_free (d->channel);
  g_free (d);
}

static void
on_stream_opened (GObject *source, GAsyncResult *res, gpointer user_data)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (source);
  g_autoptr (GTask) task = user_data;
  OpenData *d = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, res, &error);
  if (!r) {
    g_task_return_error (task, error);
    return;
  }
  gint64 id = pt_int (r, PT_F_STREAM_ID, 0);
  gint64 window = pt_int (r, PT_F_WINDOW, 0);
  if (id <= 0 || id > G_MAXUINT32 || window <= 0) {
    g_task_return_new_error (task, PEER_TREE_ERROR, PEER_TREE_ERROR_FAILED,
        "server sent an invalid stream-open reply");
    return;
  }
  /* Registered now, in the reply's dispatch: the peer may already be writing. */
  PeerTreeStream *stream = _peer_tree_stream_new (self, (guint32) id, d->target, d->channel,
      (gsize) window);
  g_task_return_pointer (task, stream, g_object_unref);
}

/**
 * peer_tree_client_open_stream_async:
 * @self: a #PeerTreeClient
 * @target: the client to open a stream to
 * @channel: the channel (the target's #PeerTreeClient::stream-request detail)
 * @args: (nullable): arguments for the target's handler
 * @timeout_ms: how long to wait for the target to accept (0: 10 s)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Opens a #PeerTreeStream to another client. Fails with
 * %PEER_TREE_ERROR_REMOTE when the target has no handler for @channel or
 * refuses, %PEER_TREE_ERROR_TIMEOUT when it does not answer in time.
 */
void
peer_tree_client_open_stream_async (PeerTreeClient *self, const char *target, const char *channel,
    JsonArray *args, guint timeout_ms, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_tree_client_open_stream_async);
  OpenData *d = g_new0 (OpenData, 1);
  d->target = g_strdup (target);
  d->channel = g_strdup (channel);
  g_task_set_task_data (task, d, (GDestroyNotify) open_data_free);
  JsonObject *params = params_new (PT_F_TO, target, PT_F_CHANNEL, channel, NULL);
  set_args (params, args);
  set_timeout (params, timeout_ms);
  request (self, PT_REQ_STREAM_OPEN, params, cancellable, on_stream_opened, task);
}

/**
 * peer_tree_client_open_stream_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): a #PeerTreeStream, or %NULL with @error set.
 */
GIOStream *
peer_tree_client_open_stream_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ------------------------------------------------------------------------ */
/* Services and topics                                                      */

/**
 * peer_tree_client_provide_service_async:
 * @self: a #PeerTreeClient
 * @service: the service name (unique on the server)
 * @methods: (nullable) (array zero-terminated=1): its methods (%NULL: any)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Provides a service. Calls arrive as #PeerTreeClient::service-call. A name
 * already provided fails with %PEER_TREE_ERROR_EXISTS.
 */
void
peer_tree_client_provide_service_async (PeerTreeClient *self, const char *service,
    const char *const *methods, GCancellable *cancellable, GAsyncReadyCallback callback,
    gpointer user_data)
{
  JsonObject *params = params_new (PT_F_SERVICE, service, NULL);
  if (methods) {
    JsonArray *list = json_array_new ();
    for (guint i = 0; methods[i]; i++)
      json_array_add_string_element (list, methods[i]);
    json_object_set_array_member (params, PT_F_METHODS, list);
  }
  request (self, PT_REQ_SERVICE_PROVIDE, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_withdraw_service_async:
 * @self: a #PeerTreeClient
 * @service: a service this client provides
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Stops providing a service; its topics are destroyed (subscribers told).
 */
void
peer_tree_client_withdraw_service_async (PeerTreeClient *self, const char *service,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_SERVICE_WITHDRAW, params_new (PT_F_SERVICE, service, NULL), cancellable, callback,
      user_data);
}

/**
 * peer_tree_client_call_service_async:
 * @self: a #PeerTreeClient
 * @service: the service
 * @method: the method
 * @args: (nullable): the arguments
 * @timeout_ms: how long to wait (0: 10 s)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome
 * @user_data: data for @callback
 *
 * Calls a service, whether the server or a client provides it.
 */
void
peer_tree_client_call_service_async (PeerTreeClient *self, const char *service,
    const char *method, JsonArray *args, guint timeout_ms, GCancellable *cancellable,
    GAsyncReadyCallback callback, gpointer user_data)
{
  JsonObject *params = params_new (PT_F_SERVICE, service, PT_F_METHOD, method, NULL);
  set_args (params, args);
  set_timeout (params, timeout_ms);
  request (self, PT_REQ_SERVICE_CALL, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_call_service_finish:
 * @self: a #PeerTreeClient
 * @result: the #GAsyncResult
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the value returned by the provider, or %NULL
 *   with @error set (%PEER_TREE_ERROR_NOT_FOUND for an unknown service or
 *   method, %PEER_TREE_ERROR_REMOTE when the provider fails,
 *   %PEER_TREE_ERROR_DISCONNECTED when it disconnects first).
 */
JsonNode *
peer_tree_client_call_service_finish (PeerTreeClient *self, GAsyncResult *result, GError **error)
{
  g_autoptr (JsonObject) r = peer_tree_client_request_finish (self, result, error);
  return r ? value_of (r) : NULL;
}

/**
 * peer_tree_client_topic_create_async:
 * @self: a #PeerTreeClient
 * @service: a service this client provides
 * @topic: the topic
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Creates a topic of one's service.
 */
void
peer_tree_client_topic_create_async (PeerTreeClient *self, const char *service, const char *topic,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_TOPIC_CREATE, params_new (PT_F_SERVICE, service, PT_F_TOPIC, topic, NULL),
      cancellable, callback, user_data);
}

/**
 * peer_tree_client_topic_destroy_async:
 * @self: a #PeerTreeClient
 * @service: a service this client provides
 * @topic: the topic
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Destroys a topic; each subscriber gets #PeerTreeClient::topic-destroyed.
 */
void
peer_tree_client_topic_destroy_async (PeerTreeClient *self, const char *service, const char *topic,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_TOPIC_DESTROY, params_new (PT_F_SERVICE, service, PT_F_TOPIC, topic, NULL),
      cancellable, callback, user_data);
}

/**
 * peer_tree_client_publish_async:
 * @self: a #PeerTreeClient
 * @service: a service this client provides
 * @topic: the topic
 * @args: (nullable): what to publish
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish(),
 *   whose count says how many subscribers received it
 * @user_data: data for @callback
 *
 * Publishes to a topic's subscribers.
 */
void
peer_tree_client_publish_async (PeerTreeClient *self, const char *service, const char *topic,
    JsonArray *args, GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  JsonObject *params = params_new (PT_F_SERVICE, service, PT_F_TOPIC, topic, NULL);
  set_args (params, args);
  request (self, PT_REQ_TOPIC_PUBLISH, params, cancellable, callback, user_data);
}

/**
 * peer_tree_client_subscribe_async:
 * @self: a #PeerTreeClient
 * @service: the service
 * @topic: one of its topics
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Subscribes to a topic: publications arrive as #PeerTreeClient::topic.
 */
void
peer_tree_client_subscribe_async (PeerTreeClient *self, const char *service, const char *topic,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_TOPIC_SUBSCRIBE, params_new (PT_F_SERVICE, service, PT_F_TOPIC, topic, NULL),
      cancellable, callback, user_data);
}

/**
 * peer_tree_client_unsubscribe_async:
 * @self: a #PeerTreeClient
 * @service: the service
 * @topic: the topic
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the outcome; finish with peer_tree_client_finish()
 * @user_data: data for @callback
 *
 * Ends a subscription.
 */
void
peer_tree_client_unsubscribe_async (PeerTreeClient *self, const char *service, const char *topic,
    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  request (self, PT_REQ_TOPIC_UNSUBSCRIBE, params_new (PT_F_SERVICE, service, PT_F_TOPIC, topic, NULL),
      cancellable, callback, user_data);
}

/* ------------------------------------------------------------------------ */
/* Events of the messaging APIs: handlers of the event table in             */
/* peertree-client.c                                                        */

/* A message to answer: emitted with the value of @detail_field as detail. */
static void
emit_message (PeerTreeClient *self, JsonObject *ev, PtMessageKind kind, guint signal,
    const char *detail_field)
{
  g_autoptr (PeerTreeMessage) msg = _peer_tree_message_new (self, kind, ev);
  if (!msg)
    return;
  const char *detail = detail_field ? pt_str (ev, detail_field) : NULL;
  g_signal_emit (self, pt_signals[signal], detail ? g_quark_try_string (detail) : 0, msg);
  /* Unanswered and unreferenced: finalizing it answers with the default. */
}

void
_peer_tree_client_on_message (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  emit_message (self, ev, PT_MESSAGE_EVENT, SIG_MESSAGE, PT_F_NAME);
}

void
_peer_tree_client_on_target_request (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  emit_message (self, ev, PT_MESSAGE_TARGET_REQUEST, SIG_TARGET_REQUEST, NULL);
}

void
_peer_tree_client_on_stream_request (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  emit_message (self, ev, PT_MESSAGE_STREAM_REQUEST, SIG_STREAM_REQUEST, PT_F_CHANNEL);
}

void
_peer_tree_client_on_service_call (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  emit_message (self, ev, PT_MESSAGE_SERVICE_CALL, SIG_SERVICE_CALL, PT_F_SERVICE);
}

void
_peer_tree_client_on_target_disconnected (PeerTreeClient *self, const char *tree_id,
    JsonObject *ev)
{
  const char *id = pt_str (ev, PT_F_CLIENT_ID);
  if (id)
    g_signal_emit (self, pt_signals[SIG_TARGET_DISCONNECTED], 0, id);
}

void
_peer_tree_client_on_topic (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *service = pt_str (ev, PT_F_SERVICE), *topic = pt_str (ev, PT_F_TOPIC);
  if (!service || !topic)
    return;
  JsonNode *args = json_object_get_member (ev, PT_F_ARGS);
  g_autoptr (JsonArray) array = args && JSON_NODE_HOLDS_ARRAY (args) ?
      json_array_ref (json_node_get_array (args)) : json_array_new ();
  g_signal_emit (self, pt_signals[SIG_TOPIC], g_quark_try_string (topic), service, topic, array);
}

void
_peer_tree_client_on_topic_destroyed (PeerTreeClient *self, const char *tree_id, JsonObject *ev)
{
  const char *service = pt_str (ev, PT_F_SERVICE), *topic = pt_str (ev, PT_F_TOPIC);
  if (service && topic)
    g_signal_emit (self, pt_signals[SIG_TOPIC_DESTROYED], 0, service, topic);
}
