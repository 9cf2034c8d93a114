/* peertree-server — several servers as one service, through Redis
 * (--redis redis://HOST:PORT[/DB]); docs/cluster.md has the design.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every piece of shared state has one owner server, recorded in Redis:
 *   pt:server:ID   the heartbeat of server ID (its URL), EX 3 s, set every second
 *   pt:client:CID  "SERVER SECRETHASH|-": the server client CID is connected to
 *   pt:tree:TID    the server that holds tree TID (where it was created)
 *   pt:room:NAME, pt:svc:NAME   the server of a room (its first member's), of a
 *                  service (its provider's)
 * (EX 30 s, refreshed every 10 s by their owner, so that they come back after
 * Redis restarts.) A request about a tree, a room, a service or another client
 * is forwarded to the owner's channel pt:srv:ID and handled there, against a
 * proxy PtConn of the requesting client (c->remote): every handler runs
 * unchanged, and what it sends to the proxy is published to the client's home
 * server, which writes it to the socket. One GET-like script call and one
 * PUBLISH per forwarded request, one PUBLISH per message back: O(1), never a
 * broadcast.
 *
 * The channel's messages are "KIND\nFROM-SERVER\nCLIENTID\nPAYLOAD", KIND one
 * of req (a request of CLIENTID to handle here), msg / bin (a text / binary
 * WebSocket message for our client CLIENTID), gone (CLIENTID left FROM-SERVER:
 * drop its proxy), kick (CLIENTID was taken over elsewhere). They are read like
 * client input: a malformed one is dropped.
 */
#include "pt-server-private.h"

#include "pt-redis.h"

#include <stdio.h>
#include <string.h>

#define SERVER_TTL_S 3          /* heartbeat expiry */
#define KEY_TTL_S 30            /* clients, trees, rooms, services */
#define REFRESH_US (10 * G_USEC_PER_SEC)
#define CHECK_US (1 * G_USEC_PER_SEC)
#define CHECK_GRACE_US (4 * G_USEC_PER_SEC) /* after (re)connecting to Redis */
#define DEAD_MISSES 2
#define RETRY_MS 500
#define STATUS_US (2 * G_USEC_PER_SEC) /* each server's summary in Redis, and reading them */
#define STATUS_TTL_S 15
#define STATUS_MAX_BYTES (1 << 20)
#define STATUS_MAX_TREES 10000
#define STATUS_MAX_SERVERS 256
#define MAX_ENVELOPE_HEADER 256

#if PT_HAVE_REDIS

typedef enum { R_NONE, R_TREE, R_CLIENT, R_ROOM, R_SERVICE, R_HELLO } RouteKind;

static const struct {
  const char *type;
  RouteKind kind;
  const char *field;
  gboolean claim;
} routes[] = {
  { PT_REQ_CREATE, R_TREE, PT_F_TREE_ID, TRUE },
  { PT_REQ_REJOIN, R_TREE, PT_F_TREE_ID, TRUE },
  { PT_REQ_JOIN, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_LEAVE, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_RECONNECT_UPSTREAM, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_SIGNAL, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_REPORT, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_CAPACITY, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_REPORT_RELAY, R_TREE, PT_F_TREE_ID, FALSE },
  { PT_REQ_EMIT, R_CLIENT, PT_F_TO, FALSE },
  { PT_REQ_ADD_TARGET, R_CLIENT, PT_F_TARGET, FALSE },
  { PT_REQ_STREAM_OPEN, R_CLIENT, PT_F_TO, FALSE },
  { PT_REQ_IS_CONNECTED, R_CLIENT, PT_F_CLIENT_ID, FALSE },
  { PT_REQ_ROOM_JOIN, R_ROOM, PT_F_ROOM, TRUE },
  { PT_REQ_ROOM_LEAVE, R_ROOM, PT_F_ROOM, FALSE },
  { PT_REQ_ROOM_EMIT, R_ROOM, PT_F_ROOM, FALSE },
  { PT_REQ_SERVICE_PROVIDE, R_SERVICE, PT_F_SERVICE, TRUE },
  { PT_REQ_SERVICE_WITHDRAW, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_SERVICE_CALL, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_TOPIC_CREATE, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_TOPIC_DESTROY, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_TOPIC_PUBLISH, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_TOPIC_SUBSCRIBE, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_TOPIC_UNSUBSCRIBE, R_SERVICE, PT_F_SERVICE, FALSE },
  { PT_REQ_HELLO, R_HELLO, PT_F_CLIENT_ID, TRUE },
};

static const char *const key_prefix[] = {
  [R_TREE] = "pt:tree:", [R_CLIENT] = "pt:client:", [R_ROOM] = "pt:room:",
  [R_SERVICE] = "pt:svc:", [R_HELLO] = "pt:client:",
};

/* KEYS[1] the key; ARGV: my id, claim (1/0), ttl, the value to set.
 * Returns the key's value if its server (first word) is me or alive; else, if
 * claiming, sets it to ARGV[4] and returns that; else nil. Atomic: two
 * servers claiming at once get the same answer. */
static const char ROUTE_LUA[] =
  "local v = redis.call('GET', KEYS[1])\n"
  "if v then\n"
  "  local o = string.match(v, '^(%S+)')\n"
  "  if o == ARGV[1] then\n"
  "    if ARGV[2] == '1' then redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3]) return ARGV[4] end\n"
  "    return v\n"
  "  end\n"
  "  if o and redis.call('EXISTS', 'pt:server:' .. o) == 1 then return v end\n"
  "end\n"
  "if ARGV[2] == '1' then redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3]) return ARGV[4] end\n"
  "return false\n";

/* Deletes KEYS[1] if its first word is ARGV[1]. */
static const char DEL_MINE_LUA[] =
  "local v = redis.call('GET', KEYS[1])\n"
  "if v and string.match(v, '^(%S+)') == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
  "return 0\n";

struct _PtCluster {
  PtServer *server;
  char *host;
  guint port, db;
  char *id;                 /* this server's id */
  char *channel;            /* pt:srv:ID */
  redisAsyncContext *cmd, *sub;
  gboolean cmd_up, sub_up;
  gint64 up_since;          /* both connected since; 0: not */
  GSource *retry;
  gboolean stopping;
  guint64 next_serial;
  GHashTable *live;         /* guint64* serial -> PtConn* (conns with a PtClusterConn) */
  GHashTable *proxies;      /* clientId -> PtConn* (remote, owning) */
  GPtrArray *doomed;        /* proxies gone, freed at the next sweep (owning): a handler
                             * may end its own proxy */
  GHashTable *misses;       /* server id -> GUINT_TO_POINTER (missed heartbeats) */
  gint64 last_refresh, last_check;
  guint64 n_forwarded, n_received, n_dead;
  guint beats_on_connection; /* heartbeats answered since connecting to Redis */
  gint64 last_status;
  JsonArray *service;       /* the last summaries of every live server (GET /status) */
};

struct _PtClusterConn {
  guint64 serial;
  char *home;               /* a proxy's: the server its client is connected to */
  GHashTable *peers;        /* a local conn's: servers its requests went to */
  GHashTable *tree_peers;   /* those of them that hold its trees */
  GHashTable *streams;      /* a local conn's streams held elsewhere: id -> server (owned) */
  char *token;              /* a local conn's hello token (with --auth-key), for its proxies */
  guint n_waiting;          /* route calls in flight (keeps its requests in order) */
  gboolean bypass;          /* dispatching a routed request here */
};

typedef struct {
  PtCluster *cl;
  guint64 serial;
  RouteKind kind;
  gint64 req_id;
  char *text;
  gsize len;
  char *client_id;          /* hello */
  char hash_hex[65];        /* hello: the secret's hash, "" without one */
} RouteCall;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static PtClusterConn *
conn_cl (PtConn *c)
{
  PtCluster *cl = c->server->cluster;
  if (!c->cl) {
    c->cl = g_new0 (PtClusterConn, 1);
    c->cl->serial = ++cl->next_serial;
    g_hash_table_insert (cl->live, &c->cl->serial, c);
  }
  return c->cl;
}

static PtConn *
conn_by_serial (PtCluster *cl, guint64 serial)
{
  PtConn *c = g_hash_table_lookup (cl->live, &serial);
  return c && !c->gone ? c : NULL;
}

static gboolean
redis_ready (PtCluster *cl)
{
  return cl && !cl->stopping && cl->cmd && cl->cmd_up;
}

static void
command_argv (PtCluster *cl, redisCallbackFn *fn, void *data, int argc, const char **argv,
    const size_t *lens)
{
  if (!redis_ready (cl) || redisAsyncCommandArgv (cl->cmd, fn, data, argc, argv, lens) != REDIS_OK) {
    if (fn)
      fn (NULL, NULL, data); /* every callback takes a NULL reply */
  }
}

static void
set_key (PtCluster *cl, const char *key, const char *value, guint ttl)
{
  g_autofree char *t = g_strdup_printf ("%u", ttl);
  const char *argv[] = { "SET", key, value, "EX", t };
  command_argv (cl, NULL, NULL, 5, argv, NULL);
}

static void
eval (PtCluster *cl, const char *script, redisCallbackFn *fn, void *data, const char *key,
    const char *a1, const char *a2, const char *a3, const char *a4)
{
  const char *argv[] = { "EVAL", script, "1", key, a1, a2, a3, a4 };
  int argc = 5 + (a2 != NULL) + (a3 != NULL) + (a4 != NULL);
  command_argv (cl, fn, data, argc, argv, NULL);
}

/* Publishes KIND\nME\nCLIENTID\nPAYLOAD to @server's channel. */
static void
publish (PtCluster *cl, const char *server, const char *kind, const char *client_id,
    const void *payload, gsize len)
{
  if (!redis_ready (cl))
    return;
  g_autofree char *channel = g_strconcat ("pt:srv:", server, NULL);
  g_autofree char *head = g_strdup_printf ("%s\n%s\n%s\n", kind, cl->id, client_id);
  gsize hlen = strlen (head);
  g_autofree char *buf = g_malloc (hlen + len);
  memcpy (buf, head, hlen);
  if (len)
    memcpy (buf + hlen, payload, len);
  const char *argv[] = { "PUBLISH", channel, buf };
  size_t lens[] = { 7, strlen (channel), hlen + len };
  redisAsyncCommandArgv (cl->cmd, NULL, NULL, 3, argv, lens);
}

static char *
hash_hex (const guint8 hash[32])
{
  char *s = g_malloc (65);
  for (int i = 0; i < 32; i++)
    snprintf (s + 2 * i, 3, "%02x", hash[i]);
  return s;
}

static char *
client_value (PtCluster *cl, PtConn *c)
{
  g_autofree char *h = c->has_secret ? hash_hex (c->secret_hash) : g_strdup ("-");
  return g_strdup_printf ("%s %s", cl->id, h);
}

/* ------------------------------------------------------------------------ */
/* Proxies: the clients of other servers, as seen here                      */

static PtConn *
proxy_get (PtCluster *cl, const char *client_id, const char *home)
{
  PtServer *self = cl->server;
  PtConn *c = g_hash_table_lookup (self->clients, client_id);
  if (c && !c->remote) {
    /* our own client: another server still thinks it is there */
    g_debug ("cluster: %s asks for %s, connected here: dropped", home, client_id);
    return NULL;
  }
  if (c) {
    if (!c->remote || !c->cl) /* not ours to move */
      return NULL;
    if (g_strcmp0 (c->cl->home, home) != 0) {
      /* it reconnected to another server: the same client, its places kept */
      g_free (c->cl->home);
      c->cl->home = g_strdup (home);
    }
    return c;
  }
  /* another server may not fill this one with proxies */
  if (g_hash_table_size (cl->proxies) >= self->max_clients) {
    g_debug ("cluster: %u proxies: request of %s from %s dropped",
        g_hash_table_size (cl->proxies), client_id, home);
    return NULL;
  }
  c = g_new0 (PtConn, 1);
  c->server = self;
  c->remote = TRUE;
  c->closed = TRUE;
  c->client_id = g_strdup (client_id);
  c->connected_at = c->last_seen = c->tokens_at = pt_now ();
  conn_cl (c)->home = g_strdup (home);
  g_hash_table_insert (cl->proxies, c->client_id, c);
  g_hash_table_insert (self->clients, c->client_id, c);
  return c;
}

/* @c is gone (pt_conn_gone): out of the index now, freed at the next sweep,
 * since the handler that ended it may still hold it. */
void
pt_cluster_proxy_free (PtConn *c)
{
  PtCluster *cl = c->server->cluster;
  if (g_hash_table_lookup (cl->proxies, c->client_id) == c) {
    g_hash_table_steal (cl->proxies, c->client_id);
    g_ptr_array_add (cl->doomed, c);
  }
}

void
pt_cluster_send (PtConn *c, gboolean binary, const void *data, gsize len)
{
  PtCluster *cl = c->server->cluster;
  if (c->gone || !c->cl || !c->cl->home)
    return;
  publish (cl, c->cl->home, binary ? "bin" : "msg", c->client_id, data, len);
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */

static void
route_call_free (RouteCall *rc)
{
  g_free (rc->text);
  g_free (rc->client_id);
  g_free (rc);
}

static void
dispatch_here (PtConn *c, const char *text, gsize len)
{
  PtClusterConn *cc = conn_cl (c);
  cc->bypass = TRUE;
  guint64 serial = cc->serial;
  pt_request_dispatch (c, text, len);
  /* the dispatch may have freed c */
  PtConn *still = g_hash_table_lookup (c->server->cluster->live, &serial);
  if (still)
    still->cl->bypass = FALSE;
}

static void
forward (PtCluster *cl, PtConn *c, RouteKind kind, const char *server, const char *text,
    gsize len)
{
  PtClusterConn *cc = conn_cl (c);
  /* the first request to a server: with --auth-key, the client's token
   * first, so that its proxy there has the client's rights */
  if (g_hash_table_add (pt_lazy_str_set (&cc->peers), g_strdup (server)) && cc->token)
    publish (cl, server, "auth", c->client_id, cc->token, strlen (cc->token));
  if (kind == R_TREE)
    g_hash_table_add (pt_lazy_str_set (&cc->tree_peers), g_strdup (server));
  cl->n_forwarded++;
  publish (cl, server, "req", c->client_id, text, len);
}

static void
reply_error (PtConn *c, gint64 id, const char *code, const char *fmt, const char *arg)
{
  PtFault f = { 0 };
  pt_fault_set (&f, code, fmt, arg);
  pt_conn_reply_error (c, id, &f);
  pt_fault_clear (&f);
}

static void
on_route (redisAsyncContext *ac, void *r, void *data)
{
  RouteCall *rc = data;
  redisReply *reply = r;
  PtCluster *cl = rc->cl;
  if (cl->stopping) {
    route_call_free (rc);
    return;
  }
  PtConn *c = conn_by_serial (cl, rc->serial);
  if (c)
    c->cl->n_waiting--;
  if (!c) {
    route_call_free (rc);
    return;
  }
  /* the owner's id, or NULL (nobody, or Redis unavailable: handled here) */
  g_autofree char *owner = NULL, *owner_hash = NULL;
  if (reply && reply->type == REDIS_REPLY_STRING && reply->len > 0 && reply->len < 256) {
    g_auto (GStrv) words = g_strsplit (reply->str, " ", 3);
    if (words[0] && pt_valid_id (words[0])) {
      owner = g_strdup (words[0]);
      owner_hash = g_strdup (words[1]);
    }
  }
  if (rc->kind == R_HELLO) {
    if (owner && strcmp (owner, cl->id) != 0) {
      /* Connected to another server: refused, unless it presents the
       * clientId's secret, which makes it the same client reconnecting
       * through another server (its old server may be dead, and tell
       * nobody for seconds): the old connection is closed, as a takeover. */
      gboolean same_secret = rc->hash_hex[0] && owner_hash && strcmp (owner_hash, rc->hash_hex) == 0;
      if (!same_secret) {
        reply_error (c, rc->req_id, PT_ERR_DUPLICATE_CLIENT_ID,
            "clientId \"%s\" is already connected", rc->client_id);
        route_call_free (rc);
        return;
      }
      publish (cl, owner, "kick", rc->client_id, NULL, 0);
      g_autofree char *v = g_strdup_printf ("%s %s", cl->id, rc->hash_hex);
      g_autofree char *key = g_strconcat ("pt:client:", rc->client_id, NULL);
      set_key (cl, key, v, KEY_TTL_S);
    }
    /* its proxy here (it was another server's client) gives way */
    PtConn *proxy = g_hash_table_lookup (cl->proxies, rc->client_id);
    if (proxy)
      pt_conn_gone (proxy, 0, NULL);
    guint64 serial = rc->serial;
    dispatch_here (c, rc->text, rc->len);
    c = conn_by_serial (cl, serial);
    if (c && !c->client_id && owner && strcmp (owner, cl->id) == 0) {
      /* refused here: the clientId is not ours */
      g_autofree char *key = g_strconcat ("pt:client:", rc->client_id, NULL);
      eval (cl, DEL_MINE_LUA, NULL, NULL, key, cl->id, NULL, NULL, NULL);
    }
  } else if (owner && strcmp (owner, cl->id) != 0)
    forward (cl, c, rc->kind, owner, rc->text, rc->len);
  else
    dispatch_here (c, rc->text, rc->len);
  route_call_free (rc);
}

/* Whether @key is held here (trees, rooms, services; clients connected). */
static gboolean
held_here (PtServer *self, RouteKind kind, const char *key)
{
  switch (kind) {
    case R_TREE: return g_hash_table_contains (self->trees, key);
    case R_ROOM: return g_hash_table_contains (self->rooms, key);
    case R_SERVICE: return g_hash_table_contains (self->services, key);
    case R_CLIENT: {
      PtConn *t = g_hash_table_lookup (self->clients, key);
      return t && !t->remote;
    }
    default: return FALSE;
  }
}

gboolean
pt_cluster_route (PtConn *c, const char *type, JsonObject *msg, gint64 id, const char *text,
    gsize len)
{
  PtServer *self = c->server;
  PtCluster *cl = self->cluster;
  if (!cl || c->remote || (c->cl && c->cl->bypass))
    return FALSE;
  guint i;
  for (i = 0; i < G_N_ELEMENTS (routes); i++)
    if (strcmp (routes[i].type, type) == 0)
      break;
  if (i == G_N_ELEMENTS (routes))
    return FALSE;
  /* the handler reports a missing or malformed key itself */
  JsonNode *node = json_object_get_member (msg, routes[i].field);
  if (!node || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return FALSE;
  const char *key = json_node_get_string (node);
  if (routes[i].kind == R_ROOM || routes[i].kind == R_SERVICE ? !pt_valid_name (key) :
      !pt_valid_id (key))
    return FALSE;
  gboolean in_order = !c->cl || c->cl->n_waiting == 0;
  if (in_order && held_here (self, routes[i].kind, key))
    return FALSE;
  if (!redis_ready (cl) && in_order)
    return FALSE; /* Redis is away: what is here still works */

  RouteCall *rc = g_new0 (RouteCall, 1);
  rc->cl = cl;
  rc->serial = conn_cl (c)->serial;
  rc->kind = routes[i].kind;
  rc->req_id = id;
  rc->text = g_memdup2 (text, len);
  rc->len = len;
  g_autofree char *value = NULL;
  if (rc->kind == R_HELLO) {
    rc->client_id = g_strdup (key);
    const char *secret = NULL;
    JsonNode *s = json_object_get_member (msg, PT_F_SECRET);
    if (s && JSON_NODE_HOLDS_VALUE (s) && json_node_get_value_type (s) == G_TYPE_STRING)
      secret = json_node_get_string (s);
    if (secret && *secret && strlen (secret) <= PT_SECRET_MAX_LEN) {
      guint8 hash[32];
      pt_hash_secret (secret, hash);
      g_autofree char *h = hash_hex (hash);
      g_strlcpy (rc->hash_hex, h, sizeof rc->hash_hex);
    }
    value = g_strdup_printf ("%s %s", cl->id, rc->hash_hex[0] ? rc->hash_hex : "-");
  } else
    value = g_strdup (cl->id);
  g_autofree char *full = g_strconcat (key_prefix[rc->kind], key, NULL);
  g_autofree char *ttl = g_strdup_printf ("%u", KEY_TTL_S);
  c->cl->n_waiting++;
  eval (cl, ROUTE_LUA, on_route, rc, full, cl->id, routes[i].claim ? "1" : "0", ttl, value);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Streams held by another server                                           */

#define MAX_REMOTE_STREAMS 256

/* A reply to stream-open from @server: the stream's frames go there. */
static void
note_stream (PtConn *c, const char *server, const char *text, gsize len)
{
  if (!memmem (text, len, "\"" PT_F_STREAM_ID "\"", strlen (PT_F_STREAM_ID) + 2) ||
      !pt_json_depth_ok (text, len))
    return;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, len, NULL))
    return;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  JsonObject *o = json_node_get_object (root);
  JsonNode *r = json_object_get_member (o, PT_F_RESULT);
  if (g_strcmp0 (json_object_get_string_member_with_default (o, PT_F_TYPE, ""), PT_TYPE_REPLY) ||
      !r || !JSON_NODE_HOLDS_OBJECT (r))
    return;
  JsonNode *id = json_object_get_member (json_node_get_object (r), PT_F_STREAM_ID);
  if (!id || !JSON_NODE_HOLDS_VALUE (id) || json_node_get_value_type (id) != G_TYPE_INT64)
    return;
  gint64 v = json_node_get_int (id);
  if (v <= 0 || v > G_MAXUINT32)
    return;
  PtClusterConn *cc = conn_cl (c);
  if (!cc->streams)
    cc->streams = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  if (g_hash_table_size (cc->streams) >= MAX_REMOTE_STREAMS) {
    /* the oldest are long ended: forget any one */
    GHashTableIter it;
    g_hash_table_iter_init (&it, cc->streams);
    if (g_hash_table_iter_next (&it, NULL, NULL))
      g_hash_table_iter_remove (&it);
  }
  g_hash_table_replace (cc->streams, GUINT_TO_POINTER ((guint32) v), g_strdup (server));
}

gboolean
pt_cluster_stream_frame (PtConn *c, guint32 id, guint8 op, const guint8 *data, gsize len)
{
  PtCluster *cl = c->server->cluster;
  if (!cl || c->remote || !c->cl || !c->cl->streams)
    return FALSE;
  const char *server = g_hash_table_lookup (c->cl->streams, GUINT_TO_POINTER (id));
  if (!server)
    return FALSE;
  /* frames other than DATA and CREDIT count against the message rate here,
   * as they would there */
  if (op != PT_OP_DATA && op != PT_OP_CREDIT && !pt_conn_take_token (c))
    return TRUE;
  publish (cl, server, "breq", c->client_id, data, len);
  if (op == PT_OP_RESET)
    g_hash_table_remove (c->cl->streams, GUINT_TO_POINTER (id));
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Rooms of a client                                                        */

void
pt_cluster_room_member (PtConn *c, const char *name, gboolean joined)
{
  PtCluster *cl = c->server->cluster;
  if (!cl || !c->client_id)
    return;
  g_autofree char *key = g_strconcat ("pt:rooms:", c->client_id, NULL);
  const char *argv[] = { joined ? "SADD" : "SREM", key, name };
  command_argv (cl, NULL, NULL, 3, argv, NULL);
}

/* The rooms of ARGV[1] if it is connected to a live server, else nil. */
static const char ROOMS_LUA[] =
  "local v = redis.call('GET', 'pt:client:' .. ARGV[1])\n"
  "local o = v and string.match(v, '^(%S+)')\n"
  "if not o or redis.call('EXISTS', 'pt:server:' .. o) == 0 then return false end\n"
  "return redis.call('SMEMBERS', KEYS[1])\n";

typedef struct {
  PtCluster *cl;
  guint64 serial;
  gint64 req_id;
  char *client_id;
} RoomsCall;

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
on_rooms (redisAsyncContext *ac, void *r, void *data)
{
  RoomsCall *rc = data;
  redisReply *reply = r;
  PtCluster *cl = rc->cl;
  PtConn *c = cl->stopping ? NULL : conn_by_serial (cl, rc->serial);
  if (c && reply && reply->type == REDIS_REPLY_ARRAY) {
    g_autoptr (GPtrArray) names = g_ptr_array_new ();
    for (size_t i = 0; i < reply->elements && names->len < PT_MAX_LIST; i++)
      if (reply->element[i]->type == REDIS_REPLY_STRING && pt_valid_name (reply->element[i]->str))
        g_ptr_array_add (names, reply->element[i]->str);
    g_ptr_array_sort (names, compare_strings);
    JsonArray *list = json_array_new ();
    for (guint i = 0; i < names->len; i++)
      json_array_add_string_element (list, names->pdata[i]);
    JsonObject *result = json_object_new ();
    json_object_set_array_member (result, PT_F_ROOMS, list);
    pt_conn_reply_ok (c, rc->req_id, result);
  } else if (c)
    reply_error (c, rc->req_id, PT_ERR_CLIENT_NOT_FOUND, "client \"%s\" is not connected",
        rc->client_id);
  g_free (rc->client_id);
  g_free (rc);
}

gboolean
pt_cluster_list_rooms (PtRequest *req, const char *client_id)
{
  PtCluster *cl = req->server->cluster;
  if (!pt_cluster_is_up (req->server) || req->conn->remote)
    return FALSE;
  RoomsCall *rc = g_new0 (RoomsCall, 1);
  rc->cl = cl;
  rc->serial = conn_cl (req->conn)->serial;
  rc->req_id = req->id;
  rc->client_id = g_strdup (client_id);
  g_autofree char *key = g_strconcat ("pt:rooms:", client_id, NULL);
  pt_request_defer (req);
  eval (cl, ROOMS_LUA, on_rooms, rc, key, client_id, NULL, NULL, NULL);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* The channel                                                              */

static void
on_channel_message (PtCluster *cl, const char *data, gsize len)
{
  PtServer *self = cl->server;
  /* KIND\nFROM\nCLIENTID\nPAYLOAD */
  const char *end = data + MIN (len, MAX_ENVELOPE_HEADER);
  const char *p = data, *fields[3];
  gsize flen[3];
  for (int i = 0; i < 3; i++) {
    const char *nl = memchr (p, '\n', end - p);
    if (!nl)
      return;
    fields[i] = p;
    flen[i] = nl - p;
    p = nl + 1;
  }
  const char *payload = p;
  gsize plen = len - (p - data);
  g_autofree char *kind = g_strndup (fields[0], flen[0]);
  g_autofree char *from = g_strndup (fields[1], flen[1]);
  g_autofree char *client_id = g_strndup (fields[2], flen[2]);
  if (!pt_valid_id (from) || !pt_valid_id (client_id) || strcmp (from, cl->id) == 0) {
    g_debug ("cluster: malformed message on %s dropped", cl->channel);
    return;
  }
  cl->n_received++;
  PtConn *c = g_hash_table_lookup (self->clients, client_id);
  if (strcmp (kind, "msg") == 0 || strcmp (kind, "bin") == 0) {
    if (!c || c->remote || c->gone || c->slow || !c->ws || !pt_ws_is_open (c->ws))
      return;
    if (kind[0] == 'm')
      note_stream (c, from, payload, plen);
    else {
      guint32 sid;
      guint8 op;
      if (c->cl && c->cl->streams && pt_frame_header_read ((const guint8 *) payload, plen, &sid, &op) &&
          op == PT_OP_RESET)
        g_hash_table_remove (c->cl->streams, GUINT_TO_POINTER (sid));
    }
    pt_conn_send_raw (c, kind[0] == 'b', (const guint8 *) payload, plen);
  } else if (strcmp (kind, "req") == 0) {
    if (plen > self->max_message_size)
      return;
    PtConn *proxy = proxy_get (cl, client_id, from);
    if (proxy)
      pt_request_dispatch (proxy, payload, plen);
  } else if (strcmp (kind, "auth") == 0) {
    /* the token the client presented at hello: its proxy's rights here,
     * verified with our own key */
    if (!self->auth_key || plen > self->max_message_size)
      return;
    PtConn *proxy = proxy_get (cl, client_id, from);
    g_autofree char *token = g_strndup (payload, plen);
    g_autoptr (GError) error = NULL;
    PtGrants *grants = proxy ? pt_auth_verify (self->auth_key, token,
        g_get_real_time () / G_USEC_PER_SEC, &error) : NULL;
    if (grants && strcmp (grants->sub, client_id) == 0) {
      pt_grants_free (proxy->grants);
      proxy->grants = grants;
    } else {
      g_debug ("cluster: token of %s from %s refused: %s", client_id, from,
          error ? error->message : "not its clientId");
      pt_grants_free (grants);
    }
  } else if (strcmp (kind, "breq") == 0) {
    if (plen > self->max_message_size || !self->binary_handler)
      return;
    PtConn *proxy = proxy_get (cl, client_id, from);
    if (proxy)
      self->binary_handler (proxy, (const guint8 *) payload, plen);
  } else if (strcmp (kind, "gone") == 0) {
    if (c && c->remote && g_strcmp0 (c->cl->home, from) == 0)
      pt_conn_gone (c, 0, NULL);
  } else if (strcmp (kind, "kick") == 0) {
    if (c && !c->remote)
      pt_conn_gone (c, PT_CLOSE_TAKEN_OVER, "clientId taken over by a new connection");
  } else
    g_debug ("cluster: unknown message kind dropped");
}

static void
on_subscribe_reply (redisAsyncContext *ac, void *r, void *data)
{
  PtCluster *cl = data;
  redisReply *reply = r;
  if (!reply || cl->stopping || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
    return;
  redisReply *k = reply->element[0], *payload = reply->element[2];
  if (k->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
    return;
  if (strcmp (k->str, "message") == 0)
    on_channel_message (cl, payload->str, payload->len);
}

/* ------------------------------------------------------------------------ */
/* Registration, heartbeat, dead servers                                    */

static void
register_all (PtCluster *cl)
{
  PtServer *self = cl->server;
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, self->clients);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    PtConn *c = v;
    if (c->remote || c->gone)
      continue;
    g_autofree char *key = g_strconcat ("pt:client:", c->client_id, NULL);
    g_autofree char *value = client_value (cl, c);
    set_key (cl, key, value, KEY_TTL_S);
  }
  GHashTable *owned[] = { self->trees, self->rooms, self->services };
  const char *prefix[] = { "pt:tree:", "pt:room:", "pt:svc:" };
  g_autofree char *ttl = g_strdup_printf ("%u", KEY_TTL_S);
  for (guint i = 0; i < G_N_ELEMENTS (owned); i++) {
    g_hash_table_iter_init (&it, owned[i]);
    while (g_hash_table_iter_next (&it, &k, NULL)) {
      g_autofree char *key = g_strconcat (prefix[i], (const char *) k, NULL);
      /* a claim: another live server's entry stays */
      eval (cl, ROUTE_LUA, NULL, NULL, key, cl->id, "1", ttl, cl->id);
    }
  }
}

static void presumed_dead (PtCluster *cl);

/* SET ... GET: nil when the key was missing. After the first beat on a
 * connection (Redis may have restarted empty), a missing key means it
 * expired: this server stalled and the others presumed it dead. */
static void
on_heartbeat (redisAsyncContext *ac, void *r, void *data)
{
  PtCluster *cl = data;
  redisReply *reply = r;
  if (!reply || cl->stopping)
    return;
  if (reply->type == REDIS_REPLY_NIL && cl->beats_on_connection++ > 0)
    presumed_dead (cl);
  else if (reply->type != REDIS_REPLY_NIL)
    cl->beats_on_connection++;
}

static void
heartbeat (PtCluster *cl)
{
  g_autofree char *key = g_strconcat ("pt:server:", cl->id, NULL);
  g_autofree char *url = pt_server_get_url (cl->server);
  g_autofree char *ttl = g_strdup_printf ("%u", SERVER_TTL_S);
  const char *argv[] = { "SET", key, url, "EX", ttl, "GET" };
  command_argv (cl, on_heartbeat, cl, 6, argv, NULL);
}

/* Server @id is gone: its clients leave what they had here (their children
 * re-placed, their correspondents told), and our clients whose trees it held
 * reconnect (close 1001) to rejoin them wherever the tree is claimed next. */
static void
server_dead (PtCluster *cl, const char *id)
{
  g_message ("cluster: server %s stopped answering", id);
  cl->n_dead++;
  g_autoptr (GPtrArray) doomed = g_ptr_array_new ();
  g_autoptr (GPtrArray) closing = g_ptr_array_new ();
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init (&it, cl->proxies);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (g_strcmp0 (((PtConn *) v)->cl->home, id) == 0)
      g_ptr_array_add (doomed, v);
  for (guint i = 0; i < doomed->len; i++)
    pt_conn_gone (doomed->pdata[i], 0, NULL);
  g_hash_table_iter_init (&it, cl->live);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    PtConn *c = v;
    if (c->remote || c->gone || !c->cl)
      continue;
    if (c->cl->peers)
      g_hash_table_remove (c->cl->peers, id);
    if (c->cl->tree_peers && g_hash_table_contains (c->cl->tree_peers, id))
      g_ptr_array_add (closing, c);
  }
  for (guint i = 0; i < closing->len; i++)
    pt_conn_gone (closing->pdata[i], PT_CLOSE_GOING_AWAY,
        "the server holding its tree stopped: reconnect and rejoin");
  g_hash_table_remove (cl->misses, id);
}

/* Our heartbeat expired while we were connected (a stall longer than its
 * expiry): the other servers dropped our clients' places. Start again, as
 * after a restart: every client of ours reconnects and rejoins; the proxies
 * of the others' clients go. */
static void
presumed_dead (PtCluster *cl)
{
  PtServer *self = cl->server;
  g_warning ("cluster: this server's heartbeat expired (the service presumed it dead): "
      "its clients reconnect");
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init (&it, self->clients);
  while (g_hash_table_iter_next (&it, NULL, &v))
    g_ptr_array_add (all, v);
  for (guint i = 0; i < all->len; i++) {
    PtConn *c = all->pdata[i];
    pt_conn_gone (c, PT_CLOSE_GOING_AWAY, "this server was presumed dead: reconnect and rejoin");
  }
  g_hash_table_remove_all (cl->misses);
  cl->beats_on_connection = 0;
  register_all (cl);
}

typedef struct {
  PtCluster *cl;
  char *id;
} CheckCall;

static void
on_check (redisAsyncContext *ac, void *r, void *data)
{
  CheckCall *cc = data;
  redisReply *reply = r;
  PtCluster *cl = cc->cl;
  if (reply && !cl->stopping && reply->type == REDIS_REPLY_INTEGER) {
    if (reply->integer == 1)
      g_hash_table_remove (cl->misses, cc->id);
    else {
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (cl->misses, cc->id)) + 1;
      if (n >= DEAD_MISSES)
        server_dead (cl, cc->id);
      else
        g_hash_table_replace (cl->misses, g_strdup (cc->id), GUINT_TO_POINTER (n));
    }
  }
  g_free (cc->id);
  g_free (cc);
}

/* The servers we depend on: our proxies' homes, where our clients' requests went. */
static void
check_servers (PtCluster *cl)
{
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter it, it2;
  gpointer v, k;
  g_hash_table_iter_init (&it, cl->live);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    PtConn *c = v;
    if (c->cl->home)
      g_hash_table_add (ids, c->cl->home);
    if (c->cl->peers) {
      g_hash_table_iter_init (&it2, c->cl->peers);
      while (g_hash_table_iter_next (&it2, &k, NULL))
        g_hash_table_add (ids, k);
    }
  }
  g_hash_table_iter_init (&it, ids);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    CheckCall *cc = g_new0 (CheckCall, 1);
    cc->cl = cl;
    cc->id = g_strdup (k);
    g_autofree char *key = g_strconcat ("pt:server:", (const char *) k, NULL);
    const char *argv[] = { "EXISTS", key };
    command_argv (cl, on_check, cc, 2, argv, NULL);
  }
}

/* ------------------------------------------------------------------------ */
/* The service in GET /status                                               */

/* The values of pt:status:* whose server is alive (a bounded SCAN). */
static const char STATUS_LUA[] =
  "local out, cursor, steps = {}, '0', 0\n"
  "repeat\n"
  "  local r = redis.call('SCAN', cursor, 'MATCH', 'pt:status:*', 'COUNT', 1000)\n"
  "  cursor = r[1]\n"
  "  for _, k in ipairs(r[2]) do\n"
  "    if redis.call('EXISTS', 'pt:server:' .. string.sub(k, 11)) == 1 then\n"
  "      local v = redis.call('GET', k)\n"
  "      if v then out[#out + 1] = v end\n"
  "    end\n"
  "  end\n"
  "  steps = steps + 1\n"
  "until cursor == '0' or steps >= 100 or #out >= tonumber(ARGV[1])\n"
  "return out\n";

/* This server's summary: {server, url, clients, trees: [{id, root, size}]}. */
static char *
status_summary (PtCluster *cl)
{
  PtServer *self = cl->server;
  g_autoptr (JsonBuilder) b = json_builder_new_immutable ();
  g_autofree char *url = pt_server_get_url (self);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "server");
  json_builder_add_string_value (b, cl->id);
  json_builder_set_member_name (b, "url");
  json_builder_add_string_value (b, url);
  json_builder_set_member_name (b, PT_F_CLIENTS);
  json_builder_add_int_value (b, pt_server_get_n_clients (self));
  json_builder_set_member_name (b, PT_F_TREES);
  json_builder_begin_array (b);
  GHashTableIter it;
  gpointer v;
  guint n = 0;
  g_hash_table_iter_init (&it, self->trees);
  while (g_hash_table_iter_next (&it, NULL, &v) && n++ < STATUS_MAX_TREES) {
    TreeEntry *t = v;
    json_builder_begin_object (b);
    json_builder_set_member_name (b, PT_F_ID);
    json_builder_add_string_value (b, t->id);
    json_builder_set_member_name (b, PT_F_ROOT);
    json_builder_add_string_value (b, pt_tree_get_root (t->tree));
    json_builder_set_member_name (b, PT_F_SIZE);
    json_builder_add_int_value (b, pt_tree_size (t->tree));
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* Another server's summary, as read from Redis: rebuilt from its checked
 * fields only; NULL if malformed. */
static JsonObject *
status_checked (const char *text, gsize len)
{
  if (len > STATUS_MAX_BYTES || !pt_json_depth_ok (text, len))
    return NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, len, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  JsonObject *in = json_node_get_object (root);
  const char *server = pt_str (in, "server"), *url = pt_str (in, "url");
  JsonNode *clients = json_object_get_member (in, PT_F_CLIENTS);
  JsonNode *trees = json_object_get_member (in, PT_F_TREES);
  if (!server || !pt_valid_id (server) || !url || strlen (url) > 300 || !clients ||
      !JSON_NODE_HOLDS_VALUE (clients) || json_node_get_value_type (clients) != G_TYPE_INT64 ||
      !trees || !JSON_NODE_HOLDS_ARRAY (trees))
    return NULL;
  JsonObject *out = json_object_new ();
  json_object_set_string_member (out, "server", server);
  json_object_set_string_member (out, "url", url);
  json_object_set_int_member (out, PT_F_CLIENTS, json_node_get_int (clients));
  JsonArray *list = json_array_new ();
  JsonArray *ta = json_node_get_array (trees);
  for (guint i = 0; i < json_array_get_length (ta) && i < STATUS_MAX_TREES; i++) {
    JsonNode *e = json_array_get_element (ta, i);
    JsonObject *t = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
    const char *id = t ? pt_str (t, PT_F_ID) : NULL, *r = t ? pt_str (t, PT_F_ROOT) : NULL;
    JsonNode *size = t ? json_object_get_member (t, PT_F_SIZE) : NULL;
    if (!id || !pt_valid_id (id) || !r || !pt_valid_id (r) || !size ||
        !JSON_NODE_HOLDS_VALUE (size) || json_node_get_value_type (size) != G_TYPE_INT64)
      continue;
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, PT_F_ID, id);
    json_object_set_string_member (o, PT_F_ROOT, r);
    json_object_set_int_member (o, PT_F_SIZE, json_node_get_int (size));
    json_array_add_object_element (list, o);
  }
  json_object_set_array_member (out, PT_F_TREES, list);
  return out;
}

static void
on_status (redisAsyncContext *ac, void *r, void *data)
{
  PtCluster *cl = data;
  redisReply *reply = r;
  if (!reply || cl->stopping || reply->type != REDIS_REPLY_ARRAY)
    return;
  JsonArray *service = json_array_new ();
  for (size_t i = 0; i < reply->elements && i < STATUS_MAX_SERVERS; i++) {
    redisReply *e = reply->element[i];
    JsonObject *o = e->type == REDIS_REPLY_STRING ? status_checked (e->str, e->len) : NULL;
    if (o)
      json_array_add_object_element (service, o);
  }
  g_clear_pointer (&cl->service, json_array_unref);
  cl->service = service;
}

static void
status_refresh (PtCluster *cl)
{
  g_autofree char *key = g_strconcat ("pt:status:", cl->id, NULL);
  g_autofree char *summary = status_summary (cl);
  set_key (cl, key, summary, STATUS_TTL_S);
  g_autofree char *max = g_strdup_printf ("%d", STATUS_MAX_SERVERS);
  eval (cl, STATUS_LUA, on_status, cl, "-", max, NULL, NULL, NULL);
}

void
pt_cluster_add_status (PtServer *self, JsonObject *root)
{
  PtCluster *cl = self->cluster;
  if (!cl)
    return;
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "server", cl->id);
  json_object_set_boolean_member (o, "redis", pt_cluster_is_up (self));
  /* every live server of the service, its trees (the members are in the
   * /status of the tree's server); refreshed every 2 s */
  json_object_set_array_member (o, "servers", cl->service ? json_array_ref (cl->service) :
      json_array_new ());
  json_object_set_object_member (root, "service", o);
}

static void
metric (GString *out, const char *name, const char *type, const char *help, guint64 v)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n%s %" G_GUINT64_FORMAT "\n", name,
      help, name, type, name, v);
}

void
pt_cluster_add_metrics (PtServer *self, GString *out)
{
  PtCluster *cl = self->cluster;
  if (!cl)
    return;
  guint64 clients = 0, trees = 0;
  guint n = cl->service ? json_array_get_length (cl->service) : 0;
  for (guint i = 0; i < n; i++) {
    JsonObject *o = json_array_get_object_element (cl->service, i);
    clients += json_object_get_int_member (o, PT_F_CLIENTS);
    trees += json_array_get_length (json_object_get_array_member (o, PT_F_TREES));
  }
  metric (out, "peertree_cluster_redis_up", "gauge", "1 while connected to Redis (--redis).",
      pt_cluster_is_up (self));
  metric (out, "peertree_cluster_servers", "gauge", "Live servers of the service (summaries "
      "refreshed every 2 s).", n);
  metric (out, "peertree_cluster_service_clients", "gauge", "Clients connected to any server "
      "of the service.", clients);
  metric (out, "peertree_cluster_service_trees", "gauge", "Trees held by any server of the "
      "service.", trees);
  metric (out, "peertree_cluster_proxies", "gauge", "Clients of other servers with requests "
      "handled here.", g_hash_table_size (cl->proxies));
  metric (out, "peertree_cluster_forwarded_total", "counter", "Requests of this server's "
      "clients forwarded to the server of their tree, room, service or target.",
      cl->n_forwarded);
  metric (out, "peertree_cluster_received_total", "counter", "Messages read from this "
      "server's channel.", cl->n_received);
  metric (out, "peertree_cluster_dead_servers_total", "counter", "Servers found dead (their "
      "heartbeat expired).", cl->n_dead);
}

static void
cluster_sweep (PtServer *self, gint64 now)
{
  PtCluster *cl = self->cluster;
  if (!cl)
    return;
  g_ptr_array_set_size (cl->doomed, 0);
  if (!redis_ready (cl) || !cl->up_since)
    return;
  heartbeat (cl);
  if (now - cl->last_refresh >= REFRESH_US) {
    cl->last_refresh = now;
    register_all (cl);
  }
  if (now - cl->last_status >= STATUS_US) {
    cl->last_status = now;
    status_refresh (cl);
  }
  if (now - cl->up_since >= CHECK_GRACE_US && now - cl->last_check >= CHECK_US) {
    cl->last_check = now;
    check_servers (cl);
  }
}

/* A client of ours left: the servers that know it drop its proxy; its
 * clientId is free. */
static void
cluster_conn_gone (PtConn *c)
{
  PtCluster *cl = c->server->cluster;
  if (!cl || c->remote)
    return;
  if (g_hash_table_lookup (c->server->clients, c->client_id) == c) {
    g_autofree char *key = g_strconcat ("pt:client:", c->client_id, NULL);
    eval (cl, DEL_MINE_LUA, NULL, NULL, key, cl->id, NULL, NULL, NULL);
    g_autofree char *rooms = g_strconcat ("pt:rooms:", c->client_id, NULL);
    const char *argv[] = { "DEL", rooms };
    command_argv (cl, NULL, NULL, 2, argv, NULL);
  }
  if (c->cl && c->cl->peers) {
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init (&it, c->cl->peers);
    while (g_hash_table_iter_next (&it, &k, NULL))
      publish (cl, k, "gone", c->client_id, NULL, 0);
  }
}

void
pt_cluster_client_registered (PtConn *c, const char *token)
{
  PtCluster *cl = c->server->cluster;
  if (!cl || c->remote)
    return;
  if (token && c->server->auth_key)
    conn_cl (c)->token = g_strdup (token);
  g_autofree char *key = g_strconcat ("pt:client:", c->client_id, NULL);
  g_autofree char *value = client_value (cl, c);
  set_key (cl, key, value, KEY_TTL_S);
}

void
pt_cluster_claim (PtServer *self, const char *prefix, const char *name)
{
  PtCluster *cl = self->cluster;
  if (!cl)
    return;
  g_autofree char *key = g_strconcat (prefix, name, NULL);
  g_autofree char *ttl = g_strdup_printf ("%u", KEY_TTL_S);
  eval (cl, ROUTE_LUA, NULL, NULL, key, cl->id, "1", ttl, cl->id);
}

void
pt_cluster_conn_free (PtConn *c)
{
  if (!c->cl)
    return;
  PtCluster *cl = c->server->cluster;
  if (cl)
    g_hash_table_remove (cl->live, &c->cl->serial);
  g_free (c->cl->home);
  g_clear_pointer (&c->cl->peers, g_hash_table_unref);
  g_clear_pointer (&c->cl->tree_peers, g_hash_table_unref);
  g_clear_pointer (&c->cl->streams, g_hash_table_unref);
  if (c->cl->token) {
    memset (c->cl->token, 0, strlen (c->cl->token));
    g_free (c->cl->token);
  }
  g_clear_pointer (&c->cl, g_free);
}

/* ------------------------------------------------------------------------ */
/* The Redis connections                                                    */

static void connect_redis (PtCluster *cl);

static gboolean
retry_now (gpointer data)
{
  PtCluster *cl = data;
  g_clear_pointer (&cl->retry, g_source_unref);
  connect_redis (cl);
  return G_SOURCE_REMOVE;
}

static void
schedule_retry (PtCluster *cl)
{
  if (cl->stopping || cl->retry)
    return;
  cl->retry = g_timeout_source_new (RETRY_MS);
  g_source_set_callback (cl->retry, retry_now, cl, NULL);
  g_source_attach (cl->retry, cl->server->context);
}

static void
check_up (PtCluster *cl)
{
  if (cl->cmd_up && cl->sub_up && !cl->up_since) {
    cl->beats_on_connection = 0;
    g_message ("cluster: connected to Redis %s:%u as server %s", cl->host, cl->port, cl->id);
    cl->up_since = pt_now ();
    heartbeat (cl);
    register_all (cl);
    status_refresh (cl);
    cl->last_refresh = cl->last_status = cl->up_since;
  }
}

static void
on_connect (const redisAsyncContext *ac, int status)
{
  PtCluster *cl = ac->data;
  if (cl->stopping)
    return;
  gboolean is_cmd = ac == cl->cmd;
  if (status != REDIS_OK) {
    /* hiredis frees ac after this */
    if (is_cmd)
      cl->cmd = NULL;
    else
      cl->sub = NULL;
    schedule_retry (cl);
    return;
  }
  if (is_cmd)
    cl->cmd_up = TRUE;
  else
    cl->sub_up = TRUE;
  check_up (cl);
}

static void
on_disconnect (const redisAsyncContext *ac, int status)
{
  PtCluster *cl = ac->data;
  if (cl->stopping)
    return;
  if (ac == cl->cmd) {
    cl->cmd = NULL;
    cl->cmd_up = FALSE;
  } else if (ac == cl->sub) {
    cl->sub = NULL;
    cl->sub_up = FALSE;
  }
  if (cl->up_since)
    g_message ("cluster: lost Redis; reconnecting");
  cl->up_since = 0;
  schedule_retry (cl);
}

static redisAsyncContext *
open_context (PtCluster *cl)
{
  redisAsyncContext *ac = redisAsyncConnect (cl->host, cl->port);
  if (!ac)
    return NULL;
  if (ac->err) {
    g_debug ("cluster: redis: %s", ac->errstr);
    redisAsyncFree (ac);
    return NULL;
  }
  ac->data = cl;
  redisAsyncSetConnectCallback (ac, on_connect);
  redisAsyncSetDisconnectCallback (ac, on_disconnect);
  pt_redis_attach (ac, cl->server->context);
  return ac;
}

static void
connect_redis (PtCluster *cl)
{
  if (!cl->cmd && (cl->cmd = open_context (cl)) && cl->db)
    redisAsyncCommand (cl->cmd, NULL, NULL, "SELECT %u", cl->db);
  if (!cl->sub && (cl->sub = open_context (cl)))
    redisAsyncCommand (cl->sub, on_subscribe_reply, cl, "SUBSCRIBE %s", cl->channel);
  if (!cl->cmd || !cl->sub)
    schedule_retry (cl);
}

gboolean
pt_cluster_start (PtServer *self, GError **error)
{
  if (!self->redis_url || !*self->redis_url)
    return TRUE;
  PtCluster *cl = g_new0 (PtCluster, 1);
  if (!pt_redis_parse_url (self->redis_url, &cl->host, &cl->port, &cl->db, error)) {
    g_free (cl);
    return FALSE;
  }
  cl->server = self;
  cl->id = pt_random_id ("s-");
  cl->channel = g_strconcat ("pt:srv:", cl->id, NULL);
  cl->live = g_hash_table_new (g_int64_hash, g_int64_equal);
  cl->proxies = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
      (GDestroyNotify) pt_conn_free);
  cl->misses = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  cl->doomed = g_ptr_array_new_with_free_func ((GDestroyNotify) pt_conn_free);
  /* stream ids from a random point: a client's streams on two servers do not
   * share an id */
  self->next_stream = g_random_int ();
  self->cluster = cl;
  connect_redis (cl);
  return TRUE;
}

void
pt_cluster_stop (PtServer *self)
{
  PtCluster *cl = self->cluster;
  if (!cl)
    return;
  cl->stopping = TRUE;
  if (cl->retry) {
    g_source_destroy (cl->retry);
    g_clear_pointer (&cl->retry, g_source_unref);
  }
  /* redisAsyncFree runs the pending callbacks with NULL replies */
  if (cl->cmd)
    redisAsyncFree (cl->cmd);
  if (cl->sub)
    redisAsyncFree (cl->sub);
  cl->cmd = cl->sub = NULL;
  /* the proxies leave (their trees told nothing: the server is stopping) */
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init (&it, cl->proxies);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    PtConn *c = v;
    c->gone = TRUE;
    if (g_hash_table_lookup (self->clients, c->client_id) == c)
      g_hash_table_remove (self->clients, c->client_id);
  }
  g_hash_table_unref (cl->proxies); /* frees them; they leave cl->live */
  g_ptr_array_unref (cl->doomed);
  g_clear_pointer (&cl->service, json_array_unref);
  g_hash_table_unref (cl->live);
  g_hash_table_unref (cl->misses);
  g_free (cl->host);
  g_free (cl->id);
  g_free (cl->channel);
  g_free (cl);
  self->cluster = NULL;
}

guint
pt_cluster_n_proxies (PtServer *self)
{
  return self->cluster ? g_hash_table_size (self->cluster->proxies) : 0;
}

gboolean
pt_cluster_is_up (PtServer *self)
{
  return self->cluster && redis_ready (self->cluster) && self->cluster->up_since;
}

/* One SCAN step over the clients of live servers: {cursor, keys}. */
static const char LIST_LUA[] =
  "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)\n"
  "local out, alive = {}, {}\n"
  "for _, k in ipairs(r[2]) do\n"
  "  local v = redis.call('GET', k)\n"
  "  local o = v and string.match(v, '^(%S+)')\n"
  "  if o then\n"
  "    if alive[o] == nil then alive[o] = redis.call('EXISTS', 'pt:server:' .. o) == 1 end\n"
  "    if alive[o] then out[#out + 1] = string.sub(k, 11) end\n"
  "  end\n"
  "end\n"
  "return {r[1], out}\n";

#define LIST_MAX_STEPS 1000

typedef struct {
  PtCluster *cl;
  guint64 serial;
  gint64 req_id;
  char *pattern;
  guint limit, steps;
  GHashTable *seen;  /* SCAN may return a key twice */
  JsonArray *list;
  gboolean more;
} ListCall;

static void
list_call_free (ListCall *lc)
{
  g_free (lc->pattern);
  g_hash_table_unref (lc->seen);
  json_array_unref (lc->list);
  g_free (lc);
}

static void
on_list (redisAsyncContext *ac, void *r, void *data)
{
  ListCall *lc = data;
  redisReply *reply = r;
  PtCluster *cl = lc->cl;
  PtConn *c = cl->stopping ? NULL : conn_by_serial (cl, lc->serial);
  if (!c) {
    list_call_free (lc);
    return;
  }
  const char *cursor = "0";
  if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[1]->type == REDIS_REPLY_ARRAY) {
    cursor = reply->element[0]->str;
    redisReply *keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      redisReply *k = keys->element[i];
      if (k->type != REDIS_REPLY_STRING || !pt_valid_id (k->str) ||
          g_hash_table_contains (lc->seen, k->str))
        continue;
      if (json_array_get_length (lc->list) == lc->limit) {
        lc->more = TRUE;
        break;
      }
      g_hash_table_add (lc->seen, g_strdup (k->str));
      json_array_add_string_element (lc->list, k->str);
    }
  }
  if (!lc->more && strcmp (cursor, "0") != 0 && ++lc->steps < LIST_MAX_STEPS &&
      redis_ready (cl)) {
    eval (cl, LIST_LUA, on_list, lc, "-", cursor, lc->pattern, NULL, NULL);
    return;
  }
  JsonObject *result = json_object_new ();
  json_object_set_array_member (result, PT_F_CLIENTS, json_array_ref (lc->list));
  json_object_set_boolean_member (result, PT_F_MORE, lc->more);
  pt_conn_reply_ok (c, lc->req_id, result);
  list_call_free (lc);
}

gboolean
pt_cluster_list_clients (PtRequest *req, const char *prefix, guint limit)
{
  PtCluster *cl = req->server->cluster;
  if (!pt_cluster_is_up (req->server))
    return FALSE;
  ListCall *lc = g_new0 (ListCall, 1);
  lc->cl = cl;
  lc->serial = conn_cl (req->conn)->serial;
  lc->req_id = req->id;
  lc->limit = limit;
  lc->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  lc->list = json_array_new ();
  /* the prefix, its glob characters escaped */
  GString *p = g_string_new ("pt:client:");
  for (const char *s = prefix ? prefix : ""; *s; s++) {
    if (strchr ("*?[]\\", *s))
      g_string_append_c (p, '\\');
    g_string_append_c (p, *s);
  }
  g_string_append_c (p, '*');
  lc->pattern = g_string_free (p, FALSE);
  pt_request_defer (req);
  eval (cl, LIST_LUA, on_list, lc, "-", "0", lc->pattern, NULL, NULL);
  return TRUE;
}

#else /* !PT_HAVE_REDIS */

gboolean
pt_cluster_route (PtConn *c, const char *type, JsonObject *msg, gint64 id, const char *text,
    gsize len)
{
  return FALSE;
}

void pt_cluster_send (PtConn *c, gboolean binary, const void *data, gsize len) {}
void pt_cluster_proxy_free (PtConn *c) {}
void pt_cluster_client_registered (PtConn *c, const char *token) {}
void pt_cluster_claim (PtServer *self, const char *prefix, const char *name) {}
void pt_cluster_room_member (PtConn *c, const char *name, gboolean joined) {}
gboolean pt_cluster_list_rooms (PtRequest *req, const char *client_id) { return FALSE; }
gboolean pt_cluster_stream_frame (PtConn *c, guint32 id, guint8 op, const guint8 *data,
    gsize len) { return FALSE; }
guint pt_cluster_n_proxies (PtServer *self) { return 0; }
void pt_cluster_add_status (PtServer *self, JsonObject *root) {}
void pt_cluster_add_metrics (PtServer *self, GString *out) {}
void pt_cluster_conn_free (PtConn *c) {}
gboolean pt_cluster_is_up (PtServer *self) { return FALSE; }
gboolean pt_cluster_list_clients (PtRequest *req, const char *prefix, guint limit) { return FALSE; }

gboolean
pt_cluster_start (PtServer *self, GError **error)
{
  if (!self->redis_url || !*self->redis_url)
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
      "this peertree-server was built without Redis support (libhiredis-dev, -Dredis=enabled)");
  return FALSE;
}

void pt_cluster_stop (PtServer *self) {}

static void cluster_conn_gone (PtConn *c) {}
static void cluster_sweep (PtServer *self, gint64 now) {}

#endif

void
pt_cluster_init (PtServer *self)
{
  static const PtHooks hooks = {
    .conn_gone = cluster_conn_gone,
    .sweep = cluster_sweep,
  };
  pt_server_add_hooks (self, &hooks);
}
