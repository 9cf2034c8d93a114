/* peertree-server — client-to-client messages: acks and the reply request,
 * emit, add-target, rooms, byte streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every lookup is by key in a hash table: routing a message costs the same
 * whatever the number of connected clients. Every per-client structure is
 * bounded (PT_MAX_* in pt-server-private.h) and removed when the client goes.
 *
 * A request that needs another client's answer (emit with ack, add-target,
 * stream-open, a call to a client's service in pt-services.c) becomes a
 * PtAck: the target gets an event carrying an ackId, answers with a "reply"
 * request, and the server then replies to the original request. Acks expire
 * (timeout), and fail when the target disconnects.
 *
 * Streams: binary frames, [stream id: 4 bytes big-endian][op: 1 byte][payload].
 * The server forwards frames between the two ends unchanged and enforces the
 * credit window, so it never holds more than PT_STREAM_WINDOW bytes per
 * direction of a stream.
 */
#include "pt-server-private.h"

#include <string.h>


typedef struct _PtStream PtStream;

typedef struct {
  guint64 id;
  int kind;
  PtConn *from;        /* waits for the answer */
  gint64 req_id;       /* of from's request */
  PtConn *to;          /* must answer */
  gint64 deadline;
  PtStream *stream;    /* PT_ACK_STREAM */
} PtAck;

typedef struct {
  char *name;
  GHashTable *members; /* PtConn* set */
} PtRoom;

struct _PtStream {
  guint32 id;
  PtConn *a, *b;       /* opener, acceptor */
  gboolean accepted;
  gint64 credit[2];    /* bytes a may send to b [0], b to a [1] */
  gboolean ended[2];   /* a ended [0], b ended [1] */
};

static PtConn *
get_target (PtConn *c, JsonObject *msg, const char *field, PtFault *f)
{
  const char *id;
  if (!pt_get_id (msg, field, TRUE, &id, f))
    return NULL;
  PtConn *t = pt_conn_lookup (c->server, id);
  if (!t)
    pt_fault_set (f, PT_ERR_CLIENT_NOT_FOUND, "client \"%s\" is not connected", id);
  return t;
}

/* ------------------------------------------------------------------------ */
/* Acks                                                                     */

static void stream_free (PtServer *self, PtStream *s, gboolean tell_a, gboolean tell_b);

static PtAck *
ack_new (PtRequest *req, PtConn *to, int kind, gint64 deadline)
{
  PtServer *self = req->server;
  PtConn *from = req->conn;
  PtAck *a = g_new0 (PtAck, 1);
  a->id = ++self->next_ack;
  a->kind = kind;
  a->from = from;
  a->req_id = req->id;
  a->to = to;
  a->deadline = deadline;
  g_hash_table_insert (self->acks, &a->id, a);
  g_hash_table_add (pt_lazy_set (&from->acks), a);
  g_hash_table_add (pt_lazy_set (&to->acks), a);
  from->n_pending++;
  pt_request_defer (req);
  return a;
}

guint64
pt_ack_new (PtRequest *req, PtConn *to, int kind, gint64 deadline)
{
  return ack_new (req, to, kind, deadline)->id;
}

/* Forgets @a; the caller has answered (or will not answer) its requester. */
static void
ack_remove (PtServer *self, PtAck *a)
{
  if (a->from->acks)
    g_hash_table_remove (a->from->acks, a);
  if (a->to->acks)
    g_hash_table_remove (a->to->acks, a);
  a->from->n_pending--;
  g_hash_table_remove (self->acks, &a->id); /* frees */
}

static void
ack_fail (PtServer *self, PtAck *a, const char *code, const char *message)
{
  PtFault f = { code, (char *) message };
  pt_conn_reply_error (a->from, a->req_id, &f);
  if (a->kind == PT_ACK_STREAM && a->stream)
    stream_free (self, a->stream, FALSE, TRUE);
  ack_remove (self, a);
}

gboolean
pt_check_pending (PtConn *c, PtFault *f)
{
  if (c->n_pending >= PT_MAX_PENDING)
    return pt_fault_set (f, PT_ERR_LIMIT, "at most %d requests may wait for other clients' replies",
        PT_MAX_PENDING);
  return TRUE;
}

/* reply {ackId, ok, value?, error?: {code, message}} — a client answering an
 * event that carried an ackId. */
static gboolean
handle_reply (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  gint64 ack_id;
  gboolean ok;
  if (!pt_get_uint (msg, PT_F_ACK_ID, TRUE, G_MAXINT64, &ack_id, f) || !pt_get_bool (msg, PT_F_OK, FALSE, &ok, f))
    return FALSE;
  guint64 key = (guint64) ack_id;
  PtAck *a = g_hash_table_lookup (self->acks, &key);
  if (!a || a->to != c)
    return pt_fault_set (f, PT_ERR_NOT_FOUND, "no request with ackId %" G_GINT64_FORMAT
        " is waiting for your reply (expired or answered)", ack_id);

  if (!ok) {
    const char *message = NULL;
    JsonNode *err = json_object_get_member (msg, PT_F_ERROR);
    if (err && JSON_NODE_HOLDS_OBJECT (err))
      pt_get_string (json_node_get_object (err), PT_F_MESSAGE, FALSE, &message, f);
    pt_fault_clear (f);
    g_autofree char *text = g_strdup_printf ("%s refused: %.256s", c->client_id,
        message ? message : "no reason given");
    ack_fail (self, a, PT_ERR_REMOTE_ERROR, text);
    return TRUE;
  }

  JsonObject *res = json_object_new ();
  switch (a->kind) {
    case PT_ACK_EMIT:
    case PT_ACK_SERVICE: {
      JsonNode *value = json_object_get_member (msg, PT_F_VALUE);
      json_object_set_member (res, PT_F_VALUE, value ? json_node_copy (value) :
          json_node_init_null (json_node_alloc ()));
      break;
    }
    case PT_ACK_TARGET:
      g_hash_table_add (pt_lazy_str_set (&a->from->targets), g_strdup (c->client_id));
      g_hash_table_add (pt_lazy_str_set (&c->targets), g_strdup (a->from->client_id));
      json_object_set_string_member (res, PT_F_TARGET, c->client_id);
      break;
    case PT_ACK_STREAM:
      a->stream->accepted = TRUE;
      json_object_set_int_member (res, PT_F_STREAM_ID, a->stream->id);
      json_object_set_int_member (res, PT_F_WINDOW, PT_STREAM_WINDOW);
      break;
  }
  pt_conn_reply_ok (a->from, a->req_id, res);
  ack_remove (self, a);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static JsonObject *
message_event (PtConn *from, const char *name, JsonNode *args)
{
  JsonObject *ev = pt_event_new (PT_EV_MESSAGE, NULL);
  json_object_set_string_member (ev, PT_F_FROM, from->client_id);
  json_object_set_string_member (ev, PT_F_NAME, name);
  json_object_set_member (ev, PT_F_ARGS, json_node_ref (args));
  return ev;
}

/* emit {to, event, args?, ack?, timeout?} */
static gboolean
handle_emit (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  const char *name;
  gboolean want_ack;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtConn *to = get_target (c, msg, PT_F_TO, f);
  if (!to || !pt_get_name (msg, PT_F_EVENT, TRUE, &name, f) || !pt_get_args (msg, &args, f) ||
      !pt_get_bool (msg, PT_F_ACK, FALSE, &want_ack, f) || !pt_get_timeout (msg, &deadline, f))
    return FALSE;
  if (want_ack && !pt_check_pending (c, f))
    return FALSE;
  g_autoptr (JsonObject) ev = message_event (c, name, args);
  if (want_ack)
    json_object_set_int_member (ev, PT_F_ACK_ID, ack_new (req, to, PT_ACK_EMIT, deadline)->id);
  pt_conn_relay (to, ev);
  return TRUE;
}

/* add-target {target, timeout?} */
static gboolean
handle_add_target (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  gint64 deadline;
  PtConn *to = get_target (c, msg, PT_F_TARGET, f);
  if (!to || !pt_get_timeout (msg, &deadline, f) || !pt_check_pending (c, f))
    return FALSE;
  if (to == c)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "a client cannot target itself");
  g_autoptr (JsonObject) ev = pt_event_new (PT_EV_TARGET_REQUEST, NULL);
  json_object_set_string_member (ev, PT_F_FROM, c->client_id);
  json_object_set_int_member (ev, PT_F_ACK_ID, ack_new (req, to, PT_ACK_TARGET, deadline)->id);
  pt_conn_send (to, ev);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Rooms                                                                    */

static void
room_free (PtRoom *r)
{
  g_hash_table_unref (r->members);
  g_free (r->name);
  g_free (r);
}

static void
room_remove_member (PtServer *self, PtRoom *r, PtConn *c)
{
  pt_cluster_room_member (c, r->name, FALSE);
  g_hash_table_remove (c->rooms, r->name);
  g_hash_table_remove (r->members, c);
  if (g_hash_table_size (r->members) == 0)
    g_hash_table_remove (self->rooms, r->name);
}

static gboolean
handle_room_join (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *name;
  if (!pt_get_name (msg, PT_F_ROOM, TRUE, &name, f))
    return FALSE;
  if (c->rooms && g_hash_table_contains (c->rooms, name))
    return TRUE;
  if (pt_set_size (c->rooms) >= PT_MAX_ROOMS)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may be in at most %d rooms", PT_MAX_ROOMS);
  PtRoom *r = g_hash_table_lookup (self->rooms, name);
  if (!r) {
    r = g_new0 (PtRoom, 1);
    r->name = g_strdup (name);
    r->members = g_hash_table_new (NULL, NULL);
    g_hash_table_insert (self->rooms, r->name, r);
    pt_cluster_claim (self, "pt:room:", r->name);
  }
  if (!c->rooms)
    c->rooms = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (r->members, c);
  g_hash_table_insert (c->rooms, r->name, r);
  pt_cluster_room_member (c, r->name, TRUE);
  return TRUE;
}

static PtRoom *
member_room (PtConn *c, JsonObject *msg, PtFault *f)
{
  const char *name;
  if (!pt_get_name (msg, PT_F_ROOM, TRUE, &name, f))
    return NULL;
  PtRoom *r = c->rooms ? g_hash_table_lookup (c->rooms, name) : NULL;
  if (!r)
    pt_fault_set (f, PT_ERR_NOT_MEMBER, "you are not in room \"%s\"", name);
  return r;
}

static gboolean
handle_room_leave (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtRoom *r = member_room (c, msg, f);
  if (!r)
    return FALSE;
  room_remove_member (c->server, r, c);
  return TRUE;
}

/* room-emit {room, event, args?}: to every member but the sender; only
 * members may emit. */
static gboolean
handle_room_emit (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  const char *name;
  g_autoptr (JsonNode) args = NULL;
  PtRoom *r = member_room (c, msg, f);
  if (!r || !pt_get_name (msg, PT_F_EVENT, TRUE, &name, f) || !pt_get_args (msg, &args, f))
    return FALSE;
  g_autoptr (JsonObject) ev = message_event (c, name, args);
  json_object_set_string_member (ev, PT_F_ROOM, r->name);
  guint n = 0;
  GHashTableIter it;
  gpointer key;
  g_auto (PtOutgoing) m = PT_OUTGOING_INIT (ev);
  g_hash_table_iter_init (&it, r->members);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (key != c && pt_conn_deliver (key, &m, TRUE))
      n++; /* a member that does not read is not counted */
  *result = json_object_new ();
  json_object_set_int_member (*result, PT_F_DELIVERED, n);
  return TRUE;
}

/* list-rooms {clientId?}: the rooms of a client (the sender by default). */
static gboolean
handle_list_rooms (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtConn *who = c;
  const char *id;
  if (!pt_get_id (msg, PT_F_CLIENT_ID, FALSE, &id, f))
    return FALSE;
  /* with --redis, a client's rooms are on the servers of the rooms */
  if (pt_cluster_list_rooms (req, id ? id : c->client_id))
    return TRUE;
  if (id && !(who = get_target (c, msg, PT_F_CLIENT_ID, f)))
    return FALSE;
  JsonArray *list = json_array_new ();
  if (who->rooms) {
    g_autoptr (GList) names = g_hash_table_get_keys (who->rooms);
    names = g_list_sort (names, (GCompareFunc) strcmp);
    for (GList *l = names; l; l = l->next)
      json_array_add_string_element (list, l->data);
  }
  *result = json_object_new ();
  json_object_set_array_member (*result, PT_F_ROOMS, list);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

static void
send_frame (PtConn *c, guint32 id, guint8 op, const void *payload, gsize len)
{
  guint8 *buf = g_malloc (PT_FRAME_HEADER_LEN + len);
  pt_frame_header_write (buf, id, op);
  if (len)
    memcpy (buf + PT_FRAME_HEADER_LEN, payload, len);
  pt_conn_send_binary (c, buf, PT_FRAME_HEADER_LEN + len);
  g_free (buf);
}

/* Frees @s; the ends named are sent a RESET. */
static void
stream_free (PtServer *self, PtStream *s, gboolean tell_a, gboolean tell_b)
{
  if (tell_a && s->accepted)
    send_frame (s->a, s->id, PT_OP_RESET, NULL, 0);
  if (tell_b)
    send_frame (s->b, s->id, PT_OP_RESET, NULL, 0);
  if (s->a->streams)
    g_hash_table_remove (s->a->streams, s);
  if (s->b->streams)
    g_hash_table_remove (s->b->streams, s);
  g_hash_table_remove (self->streams, GUINT_TO_POINTER (s->id)); /* frees */
}

/* stream-open {to, channel, args?, timeout?} */
static gboolean
handle_stream_open (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result, PtFault *f)
{
  PtServer *self = c->server;
  const char *channel;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtConn *to = get_target (c, msg, PT_F_TO, f);
  if (!to || !pt_get_name (msg, PT_F_CHANNEL, TRUE, &channel, f) || !pt_get_args (msg, &args, f) ||
      !pt_get_timeout (msg, &deadline, f) || !pt_check_pending (c, f))
    return FALSE;
  if (to == c)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "a client cannot open a stream to itself");
  if (pt_set_size (c->streams) >= PT_MAX_STREAMS)
    return pt_fault_set (f, PT_ERR_LIMIT, "a client may have at most %d streams", PT_MAX_STREAMS);
  if (pt_set_size (to->streams) >= PT_MAX_STREAMS)
    return pt_fault_set (f, PT_ERR_LIMIT, "client \"%s\" has too many streams", to->client_id);

  PtStream *s = g_new0 (PtStream, 1);
  do
    s->id = ++self->next_stream;
  while (s->id == 0 || g_hash_table_contains (self->streams, GUINT_TO_POINTER (s->id)));
  s->a = c;
  s->b = to;
  s->credit[0] = s->credit[1] = PT_STREAM_WINDOW;
  g_hash_table_insert (self->streams, GUINT_TO_POINTER (s->id), s);
  g_hash_table_add (pt_lazy_set (&c->streams), s);
  g_hash_table_add (pt_lazy_set (&to->streams), s);

  PtAck *a = ack_new (req, to, PT_ACK_STREAM, deadline);
  a->stream = s;
  g_autoptr (JsonObject) ev = pt_event_new (PT_EV_STREAM_REQUEST, NULL);
  json_object_set_string_member (ev, PT_F_FROM, c->client_id);
  json_object_set_int_member (ev, PT_F_STREAM_ID, s->id);
  json_object_set_string_member (ev, PT_F_CHANNEL, channel);
  json_object_set_member (ev, PT_F_ARGS, json_node_ref (args));
  json_object_set_int_member (ev, PT_F_WINDOW, PT_STREAM_WINDOW);
  json_object_set_int_member (ev, PT_F_ACK_ID, a->id);
  pt_conn_send (to, ev);
  return TRUE;
}

static void
messaging_binary (PtConn *c, const guint8 *data, gsize len)
{
  PtServer *self = c->server;
  guint32 id;
  guint8 op;
  if (!pt_frame_header_read (data, len, &id, &op)) {
    pt_conn_gone (c, PT_CLOSE_UNSUPPORTED, "binary frame shorter than its 5-byte header");
    return;
  }
  /* with --redis: a stream held by another server (the one of the client it
   * was opened to) */
  PtStream *here = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  if ((!here || (here->a != c && here->b != c)) && pt_cluster_stream_frame (c, id, op, data, len))
    return;
  gsize n = len - PT_FRAME_HEADER_LEN;
  PtStream *s = here;
  /* DATA and CREDIT of a live stream are paced by the window; every other
   * frame counts against the message rate. */
  if ((!s || (op != PT_OP_DATA && op != PT_OP_CREDIT)) && !pt_conn_take_token (c))
    return;
  /* Frames for a stream that just ended or was reset cross in flight: drop. */
  if (!s)
    return;
  if ((s->a != c && s->b != c) || !s->accepted) {
    pt_conn_gone (c, PT_CLOSE_POLICY, "frame for a stream that is not yours or not open");
    return;
  }
  int dir = s->a == c ? 0 : 1;
  PtConn *peer = dir == 0 ? s->b : s->a;

  switch (op) {
    case PT_OP_DATA:
      if (n == 0 || s->ended[dir] || (gint64) n > s->credit[dir]) {
        g_debug ("stream %u: %s sent beyond its credit or after end; reset", id, c->client_id);
        stream_free (self, s, TRUE, TRUE);
        return;
      }
      s->credit[dir] -= n;
      break;
    case PT_OP_CREDIT: {
      if (n != 4) {
        stream_free (self, s, TRUE, TRUE);
        return;
      }
      guint32 grant = (guint32) data[5] << 24 | (guint32) data[6] << 16 | (guint32) data[7] << 8 |
          data[8];
      /* The grant lets the peer send more to c. */
      if (grant == 0 || s->credit[1 - dir] + grant > PT_STREAM_WINDOW) {
        g_debug ("stream %u: %s granted more than the window; reset", id, c->client_id);
        stream_free (self, s, TRUE, TRUE);
        return;
      }
      s->credit[1 - dir] += grant;
      break;
    }
    case PT_OP_END:
      s->ended[dir] = TRUE;
      break;
    case PT_OP_RESET:
      stream_free (self, s, dir == 1, dir == 0);
      return;
    default:
      stream_free (self, s, TRUE, TRUE);
      return;
  }
  pt_conn_relay_binary (peer, data, len);
  if (s->ended[0] && s->ended[1])
    stream_free (self, s, FALSE, FALSE);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

/* Removes everything @c takes part in, telling the other clients involved. */
static void
messaging_conn_gone (PtConn *c)
{
  PtServer *self = c->server;
  GHashTableIter it;
  gpointer key;

  /* Acks: requests c waits for are dropped; requests waiting for c fail. */
  if (c->acks) {
    g_autoptr (GList) acks = g_hash_table_get_keys (c->acks);
    for (GList *l = acks; l; l = l->next) {
      PtAck *a = l->data;
      if (a->from == c) {
        if (a->kind == PT_ACK_STREAM)
          stream_free (self, a->stream, FALSE, TRUE);
        ack_remove (self, a);
      } else {
        g_autofree char *msg = g_strdup_printf ("client \"%s\" disconnected before replying",
            c->client_id);
        ack_fail (self, a, PT_ERR_CLIENT_DISCONNECTED, msg);
      }
    }
  }
  /* Streams: the other end gets a RESET. */
  if (c->streams) {
    g_autoptr (GList) streams = g_hash_table_get_keys (c->streams);
    for (GList *l = streams; l; l = l->next) {
      PtStream *s = l->data;
      stream_free (self, s, s->b == c, s->a == c);
    }
  }
  if (c->rooms) {
    g_autoptr (GList) rooms = g_hash_table_get_values (c->rooms);
    for (GList *l = rooms; l; l = l->next)
      room_remove_member (self, l->data, c);
  }
  if (c->targets) {
    g_autoptr (JsonObject) ev = pt_event_new (PT_EV_TARGET_DISCONNECTED, NULL);
    json_object_set_string_member (ev, PT_F_CLIENT_ID, c->client_id);
    g_auto (PtOutgoing) m = PT_OUTGOING_INIT (ev);
    g_hash_table_iter_init (&it, c->targets);
    while (g_hash_table_iter_next (&it, &key, NULL)) {
      PtConn *other = pt_conn_lookup (self, key);
      if (other && other->targets && g_hash_table_remove (other->targets, c->client_id))
        pt_conn_deliver (other, &m, FALSE);
    }
    g_hash_table_remove_all (c->targets);
  }
}

static void
messaging_sweep (PtServer *self, gint64 now)
{
  g_autoptr (GPtrArray) expired = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->acks);
  while (g_hash_table_iter_next (&it, NULL, &value))
    if (((PtAck *) value)->deadline <= now)
      g_ptr_array_add (expired, value);
  for (guint i = 0; i < expired->len; i++) {
    PtAck *a = expired->pdata[i];
    g_autofree char *msg = g_strdup_printf ("client \"%s\" did not reply in time",
        a->to->client_id);
    ack_fail (self, a, PT_ERR_TIMEOUT, msg);
  }
}


static void
messaging_reset (PtServer *self)
{
  g_hash_table_remove_all (self->acks);
  g_hash_table_remove_all (self->streams);
  g_hash_table_remove_all (self->rooms);
}

static void
messaging_finalize (PtServer *self)
{
  messaging_reset (self);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->rooms);
  g_hash_table_unref (self->acks);
}

void
pt_messaging_init (PtServer *self)
{
  static const PtHooks hooks = {
    .conn_gone = messaging_conn_gone,
    .sweep = messaging_sweep,
    .reset = messaging_reset,
    .finalize = messaging_finalize,
  };
  self->acks = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, g_free);
  self->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) room_free);
  self->streams = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  pt_server_add_handler (self, PT_REQ_REPLY, handle_reply, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_EMIT, handle_emit, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_ADD_TARGET, handle_add_target, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_ROOM_JOIN, handle_room_join, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_ROOM_LEAVE, handle_room_leave, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_ROOM_EMIT, handle_room_emit, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_LIST_ROOMS, handle_list_rooms, PT_HANDLER_DEFAULT);
  pt_server_add_handler (self, PT_REQ_STREAM_OPEN, handle_stream_open, PT_HANDLER_DEFAULT);
  pt_server_set_binary_handler (self, messaging_binary);
  pt_server_add_hooks (self, &hooks);
}
