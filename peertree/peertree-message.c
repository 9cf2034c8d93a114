/* libpeertree — incoming messages that may be answered.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peertree-client-private.h"

/**
 * SECTION:peertree-message
 * @title: PeerTreeMessage
 * @short_description: a message, target request, stream request or service
 *   call received from another client
 *
 * A #PeerTreeMessage is handed to the #PeerTreeClient::message,
 * #PeerTreeClient::target-request, #PeerTreeClient::stream-request and
 * #PeerTreeClient::service-call signals. When the sender waits for an
 * answer, answer it once with peer_tree_message_reply() or
 * peer_tree_message_reply_error() (a stream request with
 * peer_tree_message_accept_stream()), now or later: keep a reference to
 * answer later.
 *
 * A message dropped without an answer is answered for you when it is
 * finalized: a target request is accepted; a message with a reply wanted, a
 * stream request and a service call are refused ("no handler"). The sender
 * never waits for nothing.
 */

struct _PeerTreeMessage {
  GObject parent_instance;
  GWeakRef client;
  PtMessageKind kind;
  char *sender, *name, *room, *service;
  JsonArray *args;
  gint64 ack_id;     /* 0: no answer wanted */
  gboolean answered;
  guint32 stream_id;
  gsize window;
};

G_DEFINE_FINAL_TYPE (PeerTreeMessage, peer_tree_message, G_TYPE_OBJECT)

/* Returns NULL if @event lacks what @kind needs. */
PeerTreeMessage *
_peer_tree_message_new (PeerTreeClient *client, PtMessageKind kind, JsonObject *event)
{
  const char *sender = pt_str (event, PT_F_FROM);
  const char *name = NULL;
  switch (kind) {
    case PT_MESSAGE_EVENT: name = pt_str (event, PT_F_NAME); break;
    case PT_MESSAGE_TARGET_REQUEST: name = "target"; break;
    case PT_MESSAGE_STREAM_REQUEST: name = pt_str (event, PT_F_CHANNEL); break;
    case PT_MESSAGE_SERVICE_CALL: name = pt_str (event, PT_F_METHOD); break;
  }
  if (!sender || !name)
    return NULL;
  PeerTreeMessage *self = g_object_new (PEER_TREE_TYPE_MESSAGE, NULL);
  g_weak_ref_set (&self->client, client);
  self->kind = kind;
  self->sender = g_strdup (sender);
  self->name = g_strdup (name);
  self->room = g_strdup (pt_str (event, PT_F_ROOM));
  self->service = g_strdup (pt_str (event, PT_F_SERVICE));
  JsonNode *args = json_object_get_member (event, PT_F_ARGS);
  self->args = args && JSON_NODE_HOLDS_ARRAY (args) ? json_array_ref (json_node_get_array (args)) :
      json_array_new ();
  self->ack_id = pt_int (event, PT_F_ACK_ID, 0);
  /* a negative or oversized id or window is no stream request */
  guint stream_id = 0, window = 0;
  if (pt_uint (event, PT_F_STREAM_ID, &stream_id))
    self->stream_id = stream_id;
  if (pt_uint (event, PT_F_WINDOW, &window))
    self->window = window;
  if (kind == PT_MESSAGE_STREAM_REQUEST && (!self->stream_id || !self->window || !self->ack_id)) {
    g_object_unref (self);
    return NULL;
  }
  return self;
}

static void
answer (PeerTreeMessage *self, gboolean ok, JsonNode *value, const char *message)
{
  if (self->answered || !self->ack_id)
    return;
  self->answered = TRUE;
  g_autoptr (PeerTreeClient) client = g_weak_ref_get (&self->client);
  if (client)
    _peer_tree_client_send_reply (client, self->ack_id, ok, value, message);
}

/**
 * peer_tree_message_get_sender:
 * @self: a #PeerTreeMessage
 *
 * Returns: the clientId of the sender (checked by the server).
 */
const char *
peer_tree_message_get_sender (PeerTreeMessage *self)
{
  return self->sender;
}

/**
 * peer_tree_message_get_name:
 * @self: a #PeerTreeMessage
 *
 * Returns: the event name of a message, the channel of a stream request, the
 *   method of a service call, or `"target"`.
 */
const char *
peer_tree_message_get_name (PeerTreeMessage *self)
{
  return self->name;
}

/**
 * peer_tree_message_get_room:
 * @self: a #PeerTreeMessage
 *
 * Returns: (nullable): the room a message was sent to, %NULL for a direct one.
 */
const char *
peer_tree_message_get_room (PeerTreeMessage *self)
{
  return self->room;
}

/**
 * peer_tree_message_get_service:
 * @self: a #PeerTreeMessage
 *
 * Returns: (nullable): the service of a service call.
 */
const char *
peer_tree_message_get_service (PeerTreeMessage *self)
{
  return self->service;
}

/**
 * peer_tree_message_get_args:
 * @self: a #PeerTreeMessage
 *
 * Returns: (transfer none): the arguments (an empty array if none were sent).
 */
JsonArray *
peer_tree_message_get_args (PeerTreeMessage *self)
{
  return self->args;
}

/**
 * peer_tree_message_expects_reply:
 * @self: a #PeerTreeMessage
 *
 * Returns: %TRUE if the sender waits for an answer not yet given.
 */
gboolean
peer_tree_message_expects_reply (PeerTreeMessage *self)
{
  return self->ack_id && !self->answered;
}

/**
 * peer_tree_message_reply:
 * @self: a #PeerTreeMessage
 * @value: (nullable): the value to return (%NULL: JSON null)
 *
 * Answers positively: the sender's emit or service call returns @value; a
 * target request is accepted. Only the first answer counts.
 */
void
peer_tree_message_reply (PeerTreeMessage *self, JsonNode *value)
{
  g_return_if_fail (PEER_TREE_IS_MESSAGE (self));
  g_return_if_fail (self->kind != PT_MESSAGE_STREAM_REQUEST);
  answer (self, TRUE, value, NULL);
}

/**
 * peer_tree_message_reply_error:
 * @self: a #PeerTreeMessage
 * @message: why
 *
 * Refuses: the sender's request fails with a #PEER_TREE_ERROR_REMOTE error
 * carrying @message.
 */
void
peer_tree_message_reply_error (PeerTreeMessage *self, const char *message)
{
  g_return_if_fail (PEER_TREE_IS_MESSAGE (self));
  answer (self, FALSE, NULL, message);
}

/**
 * peer_tree_message_accept_stream:
 * @self: a #PeerTreeMessage from #PeerTreeClient::stream-request
 *
 * Accepts a stream request.
 *
 * Returns: (transfer full) (nullable): the stream, or %NULL if the request
 *   was already answered or the client is gone.
 */
GIOStream *
peer_tree_message_accept_stream (PeerTreeMessage *self)
{
  g_return_val_if_fail (PEER_TREE_IS_MESSAGE (self), NULL);
  g_return_val_if_fail (self->kind == PT_MESSAGE_STREAM_REQUEST, NULL);
  g_autoptr (PeerTreeClient) client = g_weak_ref_get (&self->client);
  if (self->answered || !client)
    return NULL;
  /* Registered before the answer leaves, so no early frame is lost. */
  PeerTreeStream *stream = _peer_tree_stream_new (client, self->stream_id, self->sender,
      self->name, self->window);
  answer (self, TRUE, NULL, NULL);
  return G_IO_STREAM (stream);
}

static void
peer_tree_message_init (PeerTreeMessage *self)
{
  g_weak_ref_init (&self->client, NULL);
}

static void
peer_tree_message_finalize (GObject *object)
{
  PeerTreeMessage *self = PEER_TREE_MESSAGE (object);
  if (self->kind == PT_MESSAGE_TARGET_REQUEST)
    answer (self, TRUE, NULL, NULL);
  else if (self->kind == PT_MESSAGE_STREAM_REQUEST)
    answer (self, FALSE, NULL, "no handler accepted this stream channel");
  else
    answer (self, FALSE, NULL, "no handler replied");
  g_weak_ref_clear (&self->client);
  g_free (self->sender);
  g_free (self->name);
  g_free (self->room);
  g_free (self->service);
  json_array_unref (self->args);
  G_OBJECT_CLASS (peer_tree_message_parent_class)->finalize (object);
}

static void
peer_tree_message_class_init (PeerTreeMessageClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_tree_message_finalize;
}
