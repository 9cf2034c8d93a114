/* peertree-server — client-to-client messages, rooms, targets, byte streams,
 * services and topics.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every lookup is by key in a hash table: routing a message costs the same
 * whatever the number of connected clients. Every per-client structure is
 * bounded (PT_MAX_* in pt-server-private.h) and removed when the client goes.
 *
 * A request that needs another client's answer (emit with ack, add-target,
 * stream-open, a call to a client's service) becomes a PtAck: the target gets
 * an event carrying an ackId, answers with a "reply" request, and the server
 * then replies to the original request. Acks expire (timeout), and fail when
 * the target disconnects.
 *
 * Streams: binary frames, [stream id: 4 bytes big-endian][op: 1 byte][payload].
 * The server forwards frames between the two ends unchanged and enforces the
 * credit window, so it never holds more than PT_STREAM_WINDOW bytes per
 * direction of a stream.
 */
#include "pt-server-private.h"

#include <string.h>

enum { ACK_EMIT, ACK_TARGET, ACK_STREAM, ACK_SERVICE };
enum { OP_DATA = 0, OP_CREDIT = 1, OP_END = 2, OP_RESET = 3 };

typedef struct _PtStream PtStream;

typedef struct {
  guint64 id;
  int kind;
  PtConn *from;        /* waits for the answer */
  gint64 req_id;       /* of from's request */
  PtConn *to;          /* must answer */
  gint64 deadline;
  PtStream *stream;    /* ACK_STREAM */
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

typedef struct _PtService PtService;

typedef struct {
  PtService *service;
  char *name;
  GHashTable *subscribers; /* PtConn* set */
} PtTopic;

struct _PtService {
  char *name;
  PtConn *provider;        /* NULL: provided by the server */
  GHashTable *methods;     /* method name set; NULL = any */
  PtServiceFunc func;
  gpointer user_data;
  GDestroyNotify destroy;
  GHashTable *topics;      /* name -> PtTopic* (owning) */
};

static GHashTable *
lazy_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new (NULL, NULL);
  return *set;
}

static GHashTable *
lazy_str_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return *set;
}

static guint
set_size (GHashTable *set)
{
  return set ? g_hash_table_size (set) : 0;
}

static gboolean
get_bool (JsonObject *obj, const char *name, gboolean *out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  *out = FALSE;
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be true or false", name);
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* Optional "args" array, returned as a new node (an empty array if absent). */
static gboolean
get_args (JsonObject *obj, JsonNode **out, Fault *f)
{
  JsonNode *node = json_object_get_member (obj, "args");
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    *out = json_node_init_array (json_node_alloc (), json_array_new ());
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return pt_fault_set (f, "bad-request", "field \"args\" must be an array");
  *out = json_node_ref (node);
  return TRUE;
}

static gboolean
get_name (JsonObject *obj, const char *field, const char **out, Fault *f)
{
  if (!pt_get_string (obj, field, TRUE, out, f))
    return FALSE;
  gsize n = strlen (*out);
  if (n == 0 || n > 128)
    return pt_fault_set (f, "bad-request", "field \"%s\" must be 1 to 128 bytes", field);
  return TRUE;
}

static gboolean
get_timeout (JsonObject *obj, gint64 *deadline, Fault *f)
{
  gint64 ms;
  if (!pt_get_uint (obj, "timeout", FALSE, PT_MAX_TIMEOUT_MS, &ms, f))
    return FALSE;
  *deadline = g_get_monotonic_time () + (ms ? ms : PT_DEFAULT_TIMEOUT_MS) * 1000;
  return TRUE;
}

static PtConn *
get_target (PtConn *c, JsonObject *msg, const char *field, Fault *f)
{
  const char *id;
  if (!pt_get_id (msg, field, TRUE, &id, f))
    return NULL;
  PtConn *t = pt_server_lookup (c->server, id);
  if (!t)
    pt_fault_set (f, "client-not-found", "client \"%s\" is not connected", id);
  return t;
}

/* ------------------------------------------------------------------------ */
/* Acks                                                                     */

static void stream_free (PtServer *self, PtStream *s, gboolean tell_a, gboolean tell_b);

static PtAck *
ack_new (PtConn *from, PtConn *to, int kind, gint64 deadline)
{
  PtServer *self = from->server;
  PtAck *a = g_new0 (PtAck, 1);
  a->id = ++self->next_ack;
  a->kind = kind;
  a->from = from;
  a->req_id = self->req_id;
  a->to = to;
  a->deadline = deadline;
  g_hash_table_insert (self->acks, &a->id, a);
  g_hash_table_add (lazy_set (&from->acks), a);
  g_hash_table_add (lazy_set (&to->acks), a);
  from->n_pending++;
  self->req_deferred = TRUE;
  return a;
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
  Fault f = { code, (char *) message };
  pt_conn_reply_error (a->from, a->req_id, &f);
  if (a->kind == ACK_STREAM && a->stream)
    stream_free (self, a->stream, FALSE, TRUE);
  ack_remove (self, a);
}

static gboolean
check_pending (PtConn *c, Fault *f)
{
  if (c->n_pending >= PT_MAX_PENDING)
    return pt_fault_set (f, "limit", "at most %d requests may wait for other clients' replies",
        PT_MAX_PENDING);
  return TRUE;
}

/* reply {ackId, ok, value?, error?: {code, message}} — a client answering an
 * event that carried an ackId. */
static gboolean
handle_reply (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  gint64 ack_id;
  gboolean ok;
  if (!pt_get_uint (msg, "ackId", TRUE, G_MAXINT64, &ack_id, f) || !get_bool (msg, "ok", &ok, f))
    return FALSE;
  guint64 key = (guint64) ack_id;
  PtAck *a = g_hash_table_lookup (self->acks, &key);
  if (!a || a->to != c)
    return pt_fault_set (f, "not-found", "no request with ackId %" G_GINT64_FORMAT
        " is waiting for your reply (expired or answered)", ack_id);

  if (!ok) {
    const char *message = NULL;
    JsonNode *err = json_object_get_member (msg, "error");
    if (err && JSON_NODE_HOLDS_OBJECT (err))
      pt_get_string (json_node_get_object (err), "message", FALSE, &message, f);
    pt_fault_clear (f);
    g_autofree char *text = g_strdup_printf ("%s refused: %.256s", c->client_id,
        message ? message : "no reason given");
    ack_fail (self, a, "remote-error", text);
    return TRUE;
  }

  JsonObject *res = json_object_new ();
  switch (a->kind) {
    case ACK_EMIT:
    case ACK_SERVICE: {
      JsonNode *value = json_object_get_member (msg, "value");
      json_object_set_member (res, "value", value ? json_node_copy (value) :
          json_node_init_null (json_node_alloc ()));
      break;
    }
    case ACK_TARGET:
      g_hash_table_add (lazy_str_set (&a->from->targets), g_strdup (c->client_id));
      g_hash_table_add (lazy_str_set (&c->targets), g_strdup (a->from->client_id));
      json_object_set_string_member (res, "target", c->client_id);
      break;
    case ACK_STREAM:
      a->stream->accepted = TRUE;
      json_object_set_int_member (res, "streamId", a->stream->id);
      json_object_set_int_member (res, "window", PT_STREAM_WINDOW);
      break;
  }
  pt_conn_reply_ok (a->from, a->req_id, res);
  ack_remove (self, a);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Identity                                                                 */

static gboolean
handle_list_clients (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  const char *prefix;
  gint64 limit;
  if (!pt_get_string (msg, "prefix", FALSE, &prefix, f) ||
      !pt_get_uint (msg, "limit", FALSE, PT_MAX_LIST, &limit, f))
    return FALSE;
  if (!limit)
    limit = PT_MAX_LIST;
  JsonArray *list = json_array_new ();
  gboolean more = FALSE;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, c->server->clients);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    if (prefix && !g_str_has_prefix (key, prefix))
      continue;
    if (json_array_get_length (list) == (guint) limit) {
      more = TRUE;
      break;
    }
    json_array_add_string_element (list, key);
  }
  *result = json_object_new ();
  json_object_set_array_member (*result, "clients", list);
  json_object_set_boolean_member (*result, "more", more);
  return TRUE;
}

static gboolean
handle_is_connected (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  const char *id;
  if (!pt_get_id (msg, "clientId", TRUE, &id, f))
    return FALSE;
  *result = json_object_new ();
  json_object_set_boolean_member (*result, "connected", pt_server_lookup (c->server, id) != NULL);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static JsonObject *
message_event (PtConn *from, const char *name, JsonNode *args)
{
  JsonObject *ev = pt_event_new ("message", NULL);
  json_object_set_string_member (ev, "from", from->client_id);
  json_object_set_string_member (ev, "name", name);
  json_object_set_member (ev, "args", json_node_ref (args));
  return ev;
}

/* emit {to, event, args?, ack?, timeout?} */
static gboolean
handle_emit (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  const char *name;
  gboolean want_ack;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtConn *to = get_target (c, msg, "to", f);
  if (!to || !get_name (msg, "event", &name, f) || !get_args (msg, &args, f) ||
      !get_bool (msg, "ack", &want_ack, f) || !get_timeout (msg, &deadline, f))
    return FALSE;
  if (want_ack && !check_pending (c, f))
    return FALSE;
  g_autoptr (JsonObject) ev = message_event (c, name, args);
  if (want_ack)
    json_object_set_int_member (ev, "ackId", ack_new (c, to, ACK_EMIT, deadline)->id);
  pt_conn_send (to, ev);
  return TRUE;
}

/* add-target {target, timeout?} */
static gboolean
handle_add_target (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  gint64 deadline;
  PtConn *to = get_target (c, msg, "target", f);
  if (!to || !get_timeout (msg, &deadline, f) || !check_pending (c, f))
    return FALSE;
  if (to == c)
    return pt_fault_set (f, "bad-request", "a client cannot target itself");
  g_autoptr (JsonObject) ev = pt_event_new ("target-request", NULL);
  json_object_set_string_member (ev, "from", c->client_id);
  json_object_set_int_member (ev, "ackId", ack_new (c, to, ACK_TARGET, deadline)->id);
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
  g_hash_table_remove (c->rooms, r->name);
  g_hash_table_remove (r->members, c);
  if (g_hash_table_size (r->members) == 0)
    g_hash_table_remove (self->rooms, r->name);
}

static gboolean
handle_room_join (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *name;
  if (!pt_get_id (msg, "room", TRUE, &name, f))
    return FALSE;
  if (c->rooms && g_hash_table_contains (c->rooms, name))
    return TRUE;
  if (set_size (c->rooms) >= PT_MAX_ROOMS)
    return pt_fault_set (f, "limit", "a client may be in at most %d rooms", PT_MAX_ROOMS);
  PtRoom *r = g_hash_table_lookup (self->rooms, name);
  if (!r) {
    r = g_new0 (PtRoom, 1);
    r->name = g_strdup (name);
    r->members = g_hash_table_new (NULL, NULL);
    g_hash_table_insert (self->rooms, r->name, r);
  }
  if (!c->rooms)
    c->rooms = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_add (r->members, c);
  g_hash_table_insert (c->rooms, r->name, r);
  return TRUE;
}

static PtRoom *
member_room (PtConn *c, JsonObject *msg, Fault *f)
{
  const char *name;
  if (!pt_get_id (msg, "room", TRUE, &name, f))
    return NULL;
  PtRoom *r = c->rooms ? g_hash_table_lookup (c->rooms, name) : NULL;
  if (!r)
    pt_fault_set (f, "not-member", "you are not in room \"%s\"", name);
  return r;
}

static gboolean
handle_room_leave (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
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
handle_room_emit (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  const char *name;
  g_autoptr (JsonNode) args = NULL;
  PtRoom *r = member_room (c, msg, f);
  if (!r || !get_name (msg, "event", &name, f) || !get_args (msg, &args, f))
    return FALSE;
  g_autoptr (JsonObject) ev = message_event (c, name, args);
  json_object_set_string_member (ev, "room", r->name);
  guint n = 0;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, r->members);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (key != c) {
      pt_conn_send (key, ev);
      n++;
    }
  *result = json_object_new ();
  json_object_set_int_member (*result, "delivered", n);
  return TRUE;
}

/* list-rooms {clientId?}: the rooms of a client (the sender by default). */
static gboolean
handle_list_rooms (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtConn *who = c;
  if (json_object_has_member (msg, "clientId") && !(who = get_target (c, msg, "clientId", f)))
    return FALSE;
  JsonArray *list = json_array_new ();
  if (who->rooms) {
    g_autoptr (GList) names = g_hash_table_get_keys (who->rooms);
    names = g_list_sort (names, (GCompareFunc) strcmp);
    for (GList *l = names; l; l = l->next)
      json_array_add_string_element (list, l->data);
  }
  *result = json_object_new ();
  json_object_set_array_member (*result, "rooms", list);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

static void
send_frame (PtConn *c, guint32 id, guint8 op, const void *payload, gsize len)
{
  guint8 *buf = g_malloc (5 + len);
  buf[0] = id >> 24;
  buf[1] = id >> 16;
  buf[2] = id >> 8;
  buf[3] = id;
  buf[4] = op;
  if (len)
    memcpy (buf + 5, payload, len);
  pt_conn_send_binary (c, buf, 5 + len);
  g_free (buf);
}

/* Frees @s; the ends named are sent a RESET. */
static void
stream_free (PtServer *self, PtStream *s, gboolean tell_a, gboolean tell_b)
{
  if (tell_a && s->accepted)
    send_frame (s->a, s->id, OP_RESET, NULL, 0);
  if (tell_b)
    send_frame (s->b, s->id, OP_RESET, NULL, 0);
  if (s->a->streams)
    g_hash_table_remove (s->a->streams, s);
  if (s->b->streams)
    g_hash_table_remove (s->b->streams, s);
  g_hash_table_remove (self->streams, GUINT_TO_POINTER (s->id)); /* frees */
}

/* stream-open {to, channel, args?, timeout?} */
static gboolean
handle_stream_open (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *channel;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtConn *to = get_target (c, msg, "to", f);
  if (!to || !get_name (msg, "channel", &channel, f) || !get_args (msg, &args, f) ||
      !get_timeout (msg, &deadline, f) || !check_pending (c, f))
    return FALSE;
  if (to == c)
    return pt_fault_set (f, "bad-request", "a client cannot open a stream to itself");
  if (set_size (c->streams) >= PT_MAX_STREAMS)
    return pt_fault_set (f, "limit", "a client may have at most %d streams", PT_MAX_STREAMS);
  if (set_size (to->streams) >= PT_MAX_STREAMS)
    return pt_fault_set (f, "limit", "client \"%s\" has too many streams", to->client_id);

  PtStream *s = g_new0 (PtStream, 1);
  do
    s->id = ++self->next_stream;
  while (s->id == 0 || g_hash_table_contains (self->streams, GUINT_TO_POINTER (s->id)));
  s->a = c;
  s->b = to;
  s->credit[0] = s->credit[1] = PT_STREAM_WINDOW;
  g_hash_table_insert (self->streams, GUINT_TO_POINTER (s->id), s);
  g_hash_table_add (lazy_set (&c->streams), s);
  g_hash_table_add (lazy_set (&to->streams), s);

  PtAck *a = ack_new (c, to, ACK_STREAM, deadline);
  a->stream = s;
  g_autoptr (JsonObject) ev = pt_event_new ("stream-request", NULL);
  json_object_set_string_member (ev, "from", c->client_id);
  json_object_set_int_member (ev, "streamId", s->id);
  json_object_set_string_member (ev, "channel", channel);
  json_object_set_member (ev, "args", json_node_ref (args));
  json_object_set_int_member (ev, "window", PT_STREAM_WINDOW);
  json_object_set_int_member (ev, "ackId", a->id);
  pt_conn_send (to, ev);
  return TRUE;
}

void
pt_messaging_binary (PtConn *c, const guint8 *data, gsize len)
{
  PtServer *self = c->server;
  if (len < 5) {
    pt_conn_gone (c, CLOSE_UNSUPPORTED, "binary frame shorter than its 5-byte header");
    return;
  }
  guint32 id = (guint32) data[0] << 24 | (guint32) data[1] << 16 | (guint32) data[2] << 8 | data[3];
  guint8 op = data[4];
  gsize n = len - 5;
  PtStream *s = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  /* DATA and CREDIT of a live stream are paced by the window; every other
   * frame counts against the message rate. */
  if ((!s || (op != OP_DATA && op != OP_CREDIT)) && !pt_conn_take_token (c))
    return;
  /* Frames for a stream that just ended or was reset cross in flight: drop. */
  if (!s)
    return;
  if ((s->a != c && s->b != c) || !s->accepted) {
    pt_conn_gone (c, CLOSE_POLICY, "frame for a stream that is not yours or not open");
    return;
  }
  int dir = s->a == c ? 0 : 1;
  PtConn *peer = dir == 0 ? s->b : s->a;

  switch (op) {
    case OP_DATA:
      if (n == 0 || s->ended[dir] || (gint64) n > s->credit[dir]) {
        g_debug ("stream %u: %s sent beyond its credit or after end; reset", id, c->client_id);
        stream_free (self, s, TRUE, TRUE);
        return;
      }
      s->credit[dir] -= n;
      break;
    case OP_CREDIT: {
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
    case OP_END:
      s->ended[dir] = TRUE;
      break;
    case OP_RESET:
      stream_free (self, s, dir == 1, dir == 0);
      return;
    default:
      stream_free (self, s, TRUE, TRUE);
      return;
  }
  pt_conn_send_binary (peer, data, len);
  if (s->ended[0] && s->ended[1])
    stream_free (self, s, FALSE, FALSE);
}

/* ------------------------------------------------------------------------ */
/* Services and topics                                                      */

static void
topic_notify_destroyed (PtTopic *t)
{
  g_autoptr (JsonObject) ev = pt_event_new ("topic-destroyed", NULL);
  json_object_set_string_member (ev, "service", t->service->name);
  json_object_set_string_member (ev, "topic", t->name);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, t->subscribers);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    PtConn *sub = key;
    g_hash_table_remove (sub->subscriptions, t);
    pt_conn_send (sub, ev);
  }
  g_hash_table_remove_all (t->subscribers);
}

static void
topic_free (PtTopic *t)
{
  topic_notify_destroyed (t);
  g_hash_table_unref (t->subscribers);
  g_free (t->name);
  g_free (t);
}

static void
service_free (PtService *s)
{
  g_hash_table_unref (s->topics); /* tells subscribers */
  g_clear_pointer (&s->methods, g_hash_table_unref);
  if (s->destroy)
    s->destroy (s->user_data);
  g_free (s->name);
  g_free (s);
}

static PtService *
service_add (PtServer *self, const char *name, PtConn *provider)
{
  PtService *s = g_new0 (PtService, 1);
  s->name = g_strdup (name);
  s->provider = provider;
  s->topics = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) topic_free);
  g_hash_table_insert (self->services, s->name, s);
  if (provider)
    g_hash_table_add (lazy_set (&provider->services), s);
  return s;
}

static void
service_remove (PtServer *self, PtService *s)
{
  if (s->provider && s->provider->services)
    g_hash_table_remove (s->provider->services, s);
  g_hash_table_remove (self->services, s->name);
}

static PtService *
lookup_service (PtServer *self, JsonObject *msg, Fault *f)
{
  const char *name;
  if (!pt_get_id (msg, "service", TRUE, &name, f))
    return NULL;
  PtService *s = g_hash_table_lookup (self->services, name);
  if (!s)
    pt_fault_set (f, "service-not-found", "no service \"%s\"", name);
  return s;
}

static PtService *
own_service (PtConn *c, JsonObject *msg, Fault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  if (s && s->provider != c) {
    pt_fault_set (f, "not-provider", "you do not provide service \"%s\"", s->name);
    return NULL;
  }
  return s;
}

static PtTopic *
lookup_topic (PtService *s, JsonObject *msg, Fault *f)
{
  const char *name;
  if (!pt_get_id (msg, "topic", TRUE, &name, f))
    return NULL;
  PtTopic *t = g_hash_table_lookup (s->topics, name);
  if (!t)
    pt_fault_set (f, "topic-not-found", "service \"%s\" has no topic \"%s\"", s->name, name);
  return t;
}

/* service-provide {service, methods?} */
static gboolean
handle_service_provide (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *name;
  if (!pt_get_id (msg, "service", TRUE, &name, f))
    return FALSE;
  JsonNode *methods = json_object_get_member (msg, "methods");
  if (methods && !JSON_NODE_HOLDS_ARRAY (methods) && !JSON_NODE_HOLDS_NULL (methods))
    return pt_fault_set (f, "bad-request", "field \"methods\" must be an array of names");
  JsonArray *list = methods && JSON_NODE_HOLDS_ARRAY (methods) ? json_node_get_array (methods) : NULL;
  for (guint i = 0; list && i < json_array_get_length (list); i++) {
    JsonNode *m = json_array_get_element (list, i);
    if (!JSON_NODE_HOLDS_VALUE (m) || json_node_get_value_type (m) != G_TYPE_STRING ||
        !pt_valid_id (json_node_get_string (m)))
      return pt_fault_set (f, "bad-request", "\"methods\" must hold valid method names");
  }
  if (list && json_array_get_length (list) > 256)
    return pt_fault_set (f, "limit", "a service may declare at most 256 methods");
  if (g_hash_table_contains (self->services, name))
    return pt_fault_set (f, "service-exists", "service \"%s\" is already provided", name);
  if (set_size (c->services) >= PT_MAX_SERVICES)
    return pt_fault_set (f, "limit", "a client may provide at most %d services", PT_MAX_SERVICES);
  PtService *s = service_add (self, name, c);
  if (list) {
    s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < json_array_get_length (list); i++)
      g_hash_table_add (s->methods, g_strdup (json_array_get_string_element (list, i)));
  }
  return TRUE;
}

static gboolean
handle_service_withdraw (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtService *s = own_service (c, msg, f);
  if (!s)
    return FALSE;
  service_remove (c->server, s);
  return TRUE;
}

/* service-call {service, method, args?, timeout?} */
static gboolean
handle_service_call (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtServer *self = c->server;
  const char *method;
  gint64 deadline;
  g_autoptr (JsonNode) args = NULL;
  PtService *s = lookup_service (self, msg, f);
  if (!s || !pt_get_id (msg, "method", TRUE, &method, f) || !get_args (msg, &args, f) ||
      !get_timeout (msg, &deadline, f))
    return FALSE;
  if (s->methods && !g_hash_table_contains (s->methods, method))
    return pt_fault_set (f, "method-not-found", "service \"%s\" has no method \"%s\"", s->name,
        method);

  if (!s->provider) {
    g_autoptr (GError) error = NULL;
    JsonNode *value = s->func (self, c->client_id, method, json_node_get_array (args),
        s->user_data, &error);
    if (error) {
      if (value)
        json_node_unref (value);
      return pt_fault_set (f, "service-error", "%s", error->message);
    }
    *result = json_object_new ();
    json_object_set_member (*result, "value", value ? value : json_node_init_null (json_node_alloc ()));
    return TRUE;
  }
  if (s->provider == c)
    return pt_fault_set (f, "bad-request", "a provider cannot call its own service");
  if (!check_pending (c, f))
    return FALSE;
  g_autoptr (JsonObject) ev = pt_event_new ("service-call", NULL);
  json_object_set_string_member (ev, "from", c->client_id);
  json_object_set_string_member (ev, "service", s->name);
  json_object_set_string_member (ev, "method", method);
  json_object_set_member (ev, "args", json_node_ref (args));
  json_object_set_int_member (ev, "ackId", ack_new (c, s->provider, ACK_SERVICE, deadline)->id);
  pt_conn_send (s->provider, ev);
  return TRUE;
}

static gboolean
topic_create (PtService *s, const char *name, Fault *f)
{
  if (!pt_valid_id (name))
    return pt_fault_set (f, "invalid-id", "topic names are 1 to 64 of A-Z a-z 0-9 - _ . : @");
  if (g_hash_table_contains (s->topics, name))
    return pt_fault_set (f, "topic-exists", "service \"%s\" has a topic \"%s\" already", s->name, name);
  if (g_hash_table_size (s->topics) >= PT_MAX_TOPICS)
    return pt_fault_set (f, "limit", "a service may have at most %d topics", PT_MAX_TOPICS);
  PtTopic *t = g_new0 (PtTopic, 1);
  t->service = s;
  t->name = g_strdup (name);
  t->subscribers = g_hash_table_new (NULL, NULL);
  g_hash_table_insert (s->topics, t->name, t);
  return TRUE;
}

static guint
topic_publish (PtTopic *t, JsonNode *args)
{
  g_autoptr (JsonObject) ev = pt_event_new ("topic", NULL);
  json_object_set_string_member (ev, "service", t->service->name);
  json_object_set_string_member (ev, "topic", t->name);
  json_object_set_member (ev, "args", json_node_ref (args));
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, t->subscribers);
  while (g_hash_table_iter_next (&it, &key, NULL))
    pt_conn_send (key, ev);
  return g_hash_table_size (t->subscribers);
}

static gboolean
handle_topic_create (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  const char *name;
  PtService *s = own_service (c, msg, f);
  return s && pt_get_string (msg, "topic", TRUE, &name, f) && topic_create (s, name, f);
}

static gboolean
handle_topic_destroy (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtService *s = own_service (c, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  g_hash_table_remove (s->topics, t->name);
  return TRUE;
}

static gboolean
handle_topic_publish (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  g_autoptr (JsonNode) args = NULL;
  PtService *s = own_service (c, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t || !get_args (msg, &args, f))
    return FALSE;
  *result = json_object_new ();
  json_object_set_int_member (*result, "delivered", topic_publish (t, args));
  return TRUE;
}

static gboolean
handle_topic_subscribe (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  if (c->subscriptions && g_hash_table_contains (c->subscriptions, t))
    return TRUE;
  if (set_size (c->subscriptions) >= PT_MAX_SUBSCRIPTIONS)
    return pt_fault_set (f, "limit", "a client may hold at most %d subscriptions",
        PT_MAX_SUBSCRIPTIONS);
  g_hash_table_add (lazy_set (&c->subscriptions), t);
  g_hash_table_add (t->subscribers, c);
  return TRUE;
}

static gboolean
handle_topic_unsubscribe (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f)
{
  PtService *s = lookup_service (c->server, msg, f);
  PtTopic *t = s ? lookup_topic (s, msg, f) : NULL;
  if (!t)
    return FALSE;
  if (!c->subscriptions || !g_hash_table_remove (c->subscriptions, t))
    return pt_fault_set (f, "not-member", "you are not subscribed to %s/%s", s->name, t->name);
  g_hash_table_remove (t->subscribers, c);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Server-side API                                                          */

gboolean
pt_server_provide_service (PtServer *self, const char *name, const char *const *methods,
    PtServiceFunc func, gpointer user_data, GDestroyNotify destroy, GError **error)
{
  g_return_val_if_fail (PT_IS_SERVER (self), FALSE);
  g_return_val_if_fail (name != NULL && func != NULL, FALSE);
  if (!pt_valid_id (name) || g_hash_table_contains (self->services, name)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "service \"%s\" is taken or invalid", name);
    return FALSE;
  }
  PtService *s = service_add (self, name, NULL);
  s->func = func;
  s->user_data = user_data;
  s->destroy = destroy;
  if (methods) {
    s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; methods[i]; i++)
      g_hash_table_add (s->methods, g_strdup (methods[i]));
  }
  return TRUE;
}

gboolean
pt_server_withdraw_service (PtServer *self, const char *name)
{
  PtService *s = g_hash_table_lookup (self->services, name);
  if (!s)
    return FALSE;
  service_remove (self, s);
  return TRUE;
}

gboolean
pt_server_create_topic (PtServer *self, const char *service, const char *topic, GError **error)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  Fault f = { 0 };
  if (!s || s->provider) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "the server provides no service \"%s\"",
        service);
    return FALSE;
  }
  if (!topic_create (s, topic, &f)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", f.message);
    pt_fault_clear (&f);
    return FALSE;
  }
  return TRUE;
}

gboolean
pt_server_destroy_topic (PtServer *self, const char *service, const char *topic)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  return s && !s->provider && g_hash_table_remove (s->topics, topic);
}

guint
pt_server_publish (PtServer *self, const char *service, const char *topic, JsonArray *args)
{
  PtService *s = g_hash_table_lookup (self->services, service);
  PtTopic *t = s && !s->provider ? g_hash_table_lookup (s->topics, topic) : NULL;
  if (!t)
    return 0;
  g_autoptr (JsonNode) node = json_node_init_array (json_node_alloc (),
      args ? args : json_array_new ());
  if (!args)
    json_array_unref (json_node_get_array (node)); /* init_array took its own ref */
  return topic_publish (t, node);
}

/* The built-in service "peertree": the server's trees, to any client. */
static JsonNode *
builtin_service (PtServer *server, const char *caller, const char *method, JsonArray *args,
    gpointer user_data, GError **error)
{
  g_autoptr (JsonNode) status = pt_server_build_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");
  if (strcmp (method, "list-trees") == 0) {
    JsonArray *out = json_array_new ();
    for (guint i = 0; i < json_array_get_length (trees); i++) {
      JsonObject *t = json_array_get_object_element (trees, i);
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, "id", json_object_get_string_member (t, "id"));
      json_object_set_string_member (o, "root", json_object_get_string_member (t, "root"));
      json_object_set_int_member (o, "size", json_object_get_int_member (t, "size"));
      json_array_add_object_element (out, o);
    }
    return json_node_init_array (json_node_alloc (), out);
  }
  /* "tree" [id] */
  const char *id = args && json_array_get_length (args) == 1 &&
      JSON_NODE_HOLDS_VALUE (json_array_get_element (args, 0)) &&
      json_node_get_value_type (json_array_get_element (args, 0)) == G_TYPE_STRING ?
      json_array_get_string_element (args, 0) : NULL;
  if (!id) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "tree takes one argument: a tree id");
    return NULL;
  }
  for (guint i = 0; i < json_array_get_length (trees); i++)
    if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (trees, i), "id"),
            id) == 0)
      return json_node_copy (json_array_get_element (trees, i));
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "tree \"%s\" does not exist", id);
  return NULL;
}

void
pt_messaging_add_builtin (PtServer *self)
{
  static const char *const methods[] = { "list-trees", "tree", NULL };
  pt_server_provide_service (self, "peertree", methods, builtin_service, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

static const struct {
  const char *type;
  PtHandler handler;
} handlers[] = {
  { "reply", handle_reply },
  { "list-clients", handle_list_clients },
  { "is-connected", handle_is_connected },
  { "emit", handle_emit },
  { "add-target", handle_add_target },
  { "room-join", handle_room_join },
  { "room-leave", handle_room_leave },
  { "room-emit", handle_room_emit },
  { "list-rooms", handle_list_rooms },
  { "stream-open", handle_stream_open },
  { "service-provide", handle_service_provide },
  { "service-withdraw", handle_service_withdraw },
  { "service-call", handle_service_call },
  { "topic-create", handle_topic_create },
  { "topic-destroy", handle_topic_destroy },
  { "topic-publish", handle_topic_publish },
  { "topic-subscribe", handle_topic_subscribe },
  { "topic-unsubscribe", handle_topic_unsubscribe },
};

PtHandler
pt_messaging_find_handler (const char *type)
{
  for (gsize i = 0; i < G_N_ELEMENTS (handlers); i++)
    if (strcmp (handlers[i].type, type) == 0)
      return handlers[i].handler;
  return NULL;
}

void
pt_messaging_init (PtServer *self)
{
  self->acks = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, g_free);
  self->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) room_free);
  self->streams = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  self->services = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      (GDestroyNotify) service_free);
}

/* Removes everything @c takes part in, telling the other clients involved. */
void
pt_messaging_conn_gone (PtConn *c)
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
        if (a->kind == ACK_STREAM)
          stream_free (self, a->stream, FALSE, TRUE);
        ack_remove (self, a);
      } else {
        g_autofree char *msg = g_strdup_printf ("client \"%s\" disconnected before replying",
            c->client_id);
        ack_fail (self, a, "client-disconnected", msg);
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
    g_autoptr (JsonObject) ev = pt_event_new ("target-disconnected", NULL);
    json_object_set_string_member (ev, "clientId", c->client_id);
    g_hash_table_iter_init (&it, c->targets);
    while (g_hash_table_iter_next (&it, &key, NULL)) {
      PtConn *other = pt_server_lookup (self, key);
      if (other && other->targets && g_hash_table_remove (other->targets, c->client_id))
        pt_conn_send (other, ev);
    }
    g_hash_table_remove_all (c->targets);
  }
  if (c->subscriptions) {
    g_hash_table_iter_init (&it, c->subscriptions);
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_hash_table_remove (((PtTopic *) key)->subscribers, c);
    g_hash_table_remove_all (c->subscriptions);
  }
  if (c->services) {
    g_autoptr (GList) services = g_hash_table_get_keys (c->services);
    for (GList *l = services; l; l = l->next)
      service_remove (self, l->data);
  }
}

void
pt_messaging_sweep (PtServer *self, gint64 now)
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
    ack_fail (self, a, "timeout", msg);
  }
}

void
pt_messaging_reset (PtServer *self)
{
  g_hash_table_remove_all (self->acks);
  g_hash_table_remove_all (self->streams);
  g_hash_table_remove_all (self->rooms);
  /* Client-provided services only; the server's own stay. Topic subscribers
   * are connections being closed: forget them without telling. */
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->services);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    PtService *s = value;
    GHashTableIter ti;
    gpointer topic;
    g_hash_table_iter_init (&ti, s->topics);
    while (g_hash_table_iter_next (&ti, NULL, &topic))
      g_hash_table_remove_all (((PtTopic *) topic)->subscribers);
    if (s->provider)
      g_hash_table_iter_remove (&it);
  }
}

void
pt_messaging_finalize (PtServer *self)
{
  pt_messaging_reset (self);
  g_hash_table_unref (self->services);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->rooms);
  g_hash_table_unref (self->acks);
}
