/* peertree-server internals shared by the server's modules.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything here runs on the server's one GMainContext: no locking.
 *
 * The modules, from the top down; each calls only files below it:
 *
 *   pt-server.c        the GObject: properties, config, listen/stop, the sweep;
 *                      calls each module's init
 *   pt-clients.c       hello, list-clients, is-connected
 *   pt-tree-handlers.c create, join, leave, reconnect-upstream, signal, rejoin;
 *                      the source's grace period and the rebuild after a restart
 *   pt-services.c      services and topics, the built-in service "peertree"
 *   pt-messaging.c     acks and the reply request, emit, add-target, rooms, streams
 *   pt-http.c          HTTP: GET /status, the WebSocket upgrade that makes a PtConn
 *   pt-request.c       PtRequest, the one handler registry, hooks, dispatch
 *   pt-rights.c        what a token allows: the check of every request type
 *   pt-limits.c        per-IP limits (sockets, connection rate, trees), refusal log
 *   pt-auth.c          tokens (JWS HS256): verify, sign; pure
 *   pt-conn.c          connections: sending, replies, lookup, rate, teardown
 *   pt-json.c          the server's own readers (args, timeout), random ids
 *   common/pt-protocol the protocol: names, typed getters, faults, id and name rules
 *   pt-ws.c, pt-tree.c WebSocket framing on epoll; the k-tree
 *
 * A module registers its request types with pt_server_add_handler() and its
 * part of the server's life (a client gone, the sweep, stop, finalize) with
 * pt_server_add_hooks(), from its init function.
 */
#pragma once

#include "pt-auth.h"
#include "pt-server.h"
#include "pt-tree.h"
#include "pt-ws.h"

#include "common/pt-protocol.h"

#include <libsoup/soup.h>

/* WebSocket close codes used by the server. */

/* Per-client bounds (docs/protocol.md). */
#define PT_MAX_PENDING 256         /* requests awaiting another client's reply */
#define PT_MAX_ROOMS 64
#define PT_MAX_STREAMS 64
#define PT_MAX_SUBSCRIPTIONS 256
#define PT_MAX_SERVICES 16
#define PT_MAX_TOPICS 256          /* per service */
#define PT_MAX_METHODS 256         /* declared per service */
#define PT_MAX_LIST 1000           /* entries in one list-clients reply */
#define PT_STREAM_WINDOW (256 * 1024) /* bytes in flight per stream direction */
#define PT_DEFAULT_TIMEOUT_MS 10000
#define PT_MAX_TIMEOUT_MS 120000
#define PT_LISTEN_BACKLOG 1024     /* the kernel caps it at net.core.somaxconn */

typedef struct _PtConn PtConn;
typedef struct _PtRequest PtRequest;
typedef struct _PtHooks PtHooks;

struct _PtServer {
  GObject parent_instance;

  /* configuration */
  char *host;
  guint port;
  guint k, k1;
  guint max_message_size;
  guint keepalive_interval; /* s */
  guint dead_timeout;       /* s */
  guint rate, burst;        /* messages per second, bucket size */
  guint max_clients;
  guint max_trees_per_client;
  guint max_buffered;       /* bytes queued to a client that does not read */
  guint source_grace;       /* s a tree outlives its source's disconnection */
  gboolean allow_takeover;
  guint http_timeout;       /* s an HTTP connection may take to send a request */
  char *auth_key_path;      /* NULL: open server, no token needed */
  guint max_connections_per_ip;  /* 0: no limit (also below) */
  guint connection_rate_per_ip;  /* per second */
  guint conn_burst_per_ip;
  guint max_trees_per_ip;
  guint max_trees;
  char *allowed_origins;    /* as set (allowed-origins) */
  char **origins;           /* its entries; NULL: no Origin check */

  /* tokens: the key read from auth_key_path at listen */
  GBytes *auth_key;
  /* per-IP limits (pt-limits.c): address -> PtIpEntry* */
  GHashTable *ips;
  guint n_refusals_logged, n_refusals_unlogged;
  char *stun;               /* "stun:HOST:PORT" handed out in hello, or NULL */
  char *turn;               /* "turn:HOST:PORT[?transport=…]", or NULL */
  char *turn_secret_file;   /* coturn's static-auth-secret, read at listen */
  guint turn_ttl;           /* s the TURN credentials of a hello are valid */
  char *turn_secret;        /* the file's first line */
  char *tls_cert_path;      /* PEM certificate (chain) and key: wss:// and https */
  char *tls_key_path;       /* on the same port as ws://; NULL: plain only */
  GTlsCertificate *tls_cert; /* loaded at listen */

  /* state */
  SoupServer *soup;
  /* HTTP (pt-http.c): the server owns its listening socket */
  GSocket *listener;
  GSource *accept_source;   /* watching the listener, or NULL while backing off */
  GSource *accept_retry;    /* the backoff after a failed accept */
  int spare_fd;             /* given up to shed a connection when out of descriptors */
  guint max_sockets;        /* HTTP and WebSocket, below the descriptor limit */
  GHashTable *http_conns;   /* GSocket* -> PtHttpConn* (owning): not upgraded yet */
  GCancellable *tls_cancel; /* TLS handshakes in progress, cancelled at stop */
  guint bound_port;
  GMainContext *context;
  GSource *sweep;
  GHashTable *conns;    /* PtConn* -> PtConn* (owning) */
  GHashTable *clients;  /* clientId -> PtConn* (registered only) */
  /* clientIds of departed clients, kept for their secret's holder for
   * source-grace seconds: clientId -> PtReservation* (pt-clients.c) */
  GHashTable *reserved;
  PtWsLoop *ws_loop;    /* every client socket, on one epoll set */

  /* the registry (pt-request.c) */
  JsonParser *parser;   /* reused for every message */
  GHashTable *handlers; /* request type -> PtHandlerEntry* (owning) */
  void (*binary_handler) (PtConn *c, const guint8 *data, gsize len);
  GPtrArray *hooks;     /* const PtHooks*, in registration order */

  /* trees (pt-tree-handlers.c) */
  GHashTable *trees;    /* tree id -> TreeEntry* (owning) */
  /* positions reported after a server restart, waiting for their tree or
   * their parent: tree id -> GPtrArray of Claim* */
  GHashTable *claims;

  /* messaging (pt-messaging.c) */
  guint64 next_ack;
  GHashTable *acks;     /* guint64* ack id -> PtAck* (owning) */
  GHashTable *rooms;    /* room name -> PtRoom* (owning) */
  guint32 next_stream;
  GHashTable *streams;  /* guint32 id -> PtStream* (owning) */

  /* services (pt-services.c) */
  GHashTable *services; /* name -> PtService* (owning) */
};

typedef struct {
  PtServer *server;
  char *id;
  char *ip;                 /* of the connection that created it (per-IP limit) */
  PtTree *tree;
  guint8 secret_hash[32];   /* proves ownership when the source comes back */
  gboolean has_secret;
  char *data_key;           /* the source's Ed25519 public key (base64), or NULL */
  gboolean source_gone;     /* within the source grace period */
  gint64 grace_deadline;
  /* after a restart: member -> set of the children it reported at rejoin;
   * a reported position is attached silently only if its parent lists it */
  GHashTable *reports;
} TreeEntry;

typedef void (*PtReceiveFunc) (PtConn *c, gboolean binary, const guint8 *data, gsize len);

struct _PtConn {
  PtServer *server;
  PtWs *ws;
  PtReceiveFunc receive;         /* every message read (pt_request_receive) */
  char *client_id;               /* NULL before hello */
  char *ip;                      /* the peer's address; NULL for a socket pair */
  PtGrants *grants;              /* with an auth key: what the hello's token grants */
  guint8 secret_hash[32];
  gboolean has_secret;
  GHashTable *trees;             /* tree id (owned by entry) -> TreeEntry* */
  gint64 connected_at, last_seen;
  double tokens;
  gint64 tokens_at;
  gboolean gone;
  gboolean slow;                 /* stopped reading: nothing more is sent, the sweep closes it */
  gboolean closed;               /* the socket is closed: only freeing is left */
  gint64 last_ping;

  /* messaging; each set is NULL until first used, to keep idle clients small */
  guint n_pending;               /* acks this client waits for */
  GHashTable *acks;              /* PtAck* set: waited for by or from this client */
  GHashTable *rooms;             /* room name (owned by room) -> PtRoom* */
  GHashTable *targets;           /* clientId (owned) set */
  GHashTable *streams;           /* PtStream* set */
  GHashTable *subscriptions;     /* PtTopic* set */
  GHashTable *services;          /* PtService* set, provided by this client */
};


/* The server's clock (microseconds, monotonic): g_get_monotonic_time() plus
 * pt_clock_offset, which only the fuzzing harness moves (its virtual clock). */
extern gint64 pt_clock_offset;

static inline gint64
pt_now (void)
{
  return g_get_monotonic_time () + pt_clock_offset;
}

/* Runs the once-a-second sweep now (the fuzzing harness, after moving the clock). */
void pt_server_sweep_now (PtServer *self);

/* Sets of pointers (and of strings), NULL until first used. */
static inline GHashTable *
pt_lazy_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new (NULL, NULL);
  return *set;
}

static inline GHashTable *
pt_lazy_str_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return *set;
}

static inline guint
pt_set_size (GHashTable *set)
{
  return set ? g_hash_table_size (set) : 0;
}

/* ---- pt-json.c: request fields ---- */

gboolean pt_get_args (JsonObject *obj, JsonNode **out, PtFault *f);
gboolean pt_get_timeout (JsonObject *obj, gint64 *deadline, PtFault *f);
char *pt_random_id (const char *prefix);

/* ---- pt-conn.c: connections ---- */

PtConn *pt_conn_new (PtServer *self, int fd, const guint8 *initial, gsize initial_len,
    PtReceiveFunc receive);
PtConn *pt_conn_new_stream (PtServer *self, GIOStream *stream, int fd, const guint8 *initial,
    gsize initial_len, PtReceiveFunc receive);
PtConn *pt_conn_lookup (PtServer *self, const char *client_id);
/* Queues @obj to @c; FALSE if @c is gone or does not read (slow). */
gboolean pt_conn_send (PtConn *c, JsonObject *obj);
void pt_conn_send_binary (PtConn *c, const guint8 *data, gsize len);
void pt_conn_reply_ok (PtConn *c, gint64 id, JsonObject *result);
void pt_conn_reply_error (PtConn *c, gint64 id, const PtFault *f);
JsonObject *pt_event_new (const char *name, const char *tree_id);
void pt_send_event_to (PtServer *self, const char *client_id, JsonObject *event);
void pt_conn_gone (PtConn *c, gushort code, const char *reason);
gboolean pt_conn_take_token (PtConn *c);
void pt_conn_free (PtConn *c);
void pt_hash_secret (const char *secret, guint8 out[32]);
gboolean pt_secret_equal (const guint8 *a, const guint8 *b);

/* ---- pt-request.c: requests, the handler registry, hooks ---- */

/* Handles one request of its type. Returns TRUE with *result (NULL: an empty
 * object) to be replied, or FALSE with @f set to reply an error. */
typedef gboolean (*PtHandler) (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result,
    PtFault *f);
typedef void (*PtAfterReplyFunc) (PtServer *self, gpointer data);

/* The request being handled, handed to its handler. */
struct _PtRequest {
  PtServer *server;
  PtConn *conn;
  JsonObject *msg;     /* valid during the handler call only */
  gint64 id;
  /* A rejoin {source: true} handed to create: the source reclaims its tree
   * over links that may still be up. */
  gboolean rejoin;
  gboolean deferred;   /* pt_request_defer() */
  GArray *after;       /* after-reply work, in order */
};

/* The reply will be sent later (pt_conn_reply_ok/error with req->id), not on return. */
void pt_request_defer (PtRequest *req);
/* Runs @func (server, @data) once the reply of a successful request is out;
 * @destroy frees @data, run or not. */
void pt_request_after_reply (PtRequest *req, PtAfterReplyFunc func, gpointer data,
    GDestroyNotify destroy);
/* Reads one WebSocket message of @c: the PtReceiveFunc of every connection. */
void pt_request_receive (PtConn *c, gboolean binary, const guint8 *data, gsize len);

typedef enum {
  PT_HANDLER_DEFAULT = 0,
  PT_HANDLER_BEFORE_HELLO = 1 << 0, /* may be the first request of a connection */
} PtHandlerFlags;

/* What a module takes part in beyond its requests; any member may be NULL. */
struct _PtHooks {
  /* A registered client is gone: forget it and tell the clients concerned. */
  void (*conn_gone) (PtConn *c);
  /* Once a second. */
  void (*sweep) (PtServer *self, gint64 now);
  /* The server stops: drop all state, tell no one (the sockets are closing). */
  void (*reset) (PtServer *self);
  /* Free what the module's init made. */
  void (*finalize) (PtServer *self);
};

void pt_request_init (PtServer *self);
void pt_request_finalize (PtServer *self);
void pt_server_add_handler (PtServer *self, const char *type, PtHandler handler,
    PtHandlerFlags flags);
/* Binary frames after hello (streams); one handler. */
void pt_server_set_binary_handler (PtServer *self,
    void (*handler) (PtConn *c, const guint8 *data, gsize len));
/* @hooks must outlive the server (a static). Run in registration order. */
void pt_server_add_hooks (PtServer *self, const PtHooks *hooks);

/* ---- the modules' init functions, called by pt-server.c ---- */

void pt_clients_init (PtServer *self);
void pt_tree_handlers_init (PtServer *self);
void pt_messaging_init (PtServer *self);
void pt_services_init (PtServer *self);

/* pt-messaging.c, for pt-services.c */
enum { PT_ACK_EMIT, PT_ACK_TARGET, PT_ACK_STREAM, PT_ACK_SERVICE };
/* Defers @req until @to answers the event that carries the returned ack id. */
guint64 pt_ack_new (PtRequest *req, PtConn *to, int kind, gint64 deadline);
gboolean pt_check_pending (PtConn *c, PtFault *f);

/* pt-limits.c */
void pt_limits_init (PtServer *self);
void pt_limits_finalize (PtServer *self);
void pt_limits_sweep (PtServer *self, gint64 now);
/* A new connection from @ip: FALSE (logged) if over its cap or its rate. */
gboolean pt_limits_accept (PtServer *self, const char *ip);
/* Whether @ip has max-connections-per-ip sockets open. */
gboolean pt_limits_at_cap (PtServer *self, const char *ip);
void pt_limits_socket_opened (PtServer *self, const char *ip);
void pt_limits_socket_closed (PtServer *self, const char *ip);
/* A new tree from @ip: the global cap and the per-IP one (limit). */
gboolean pt_limits_tree_allowed (PtServer *self, const char *ip, PtFault *f);
void pt_limits_tree_added (PtServer *self, const char *ip);
void pt_limits_tree_removed (PtServer *self, const char *ip);
/* Logs a refusal of @ip at most once a minute (the others are counted). */
G_GNUC_PRINTF (3, 4) void pt_limits_log_refusal (PtServer *self, const char *ip,
    const char *fmt, ...);
char *pt_socket_peer_ip (GSocket *socket);

/* pt-rights.c */
/* With an auth key, whether @c's token allows request @type with @msg;
 * FALSE with @f set (forbidden) if not. Always TRUE on an open server. */
gboolean pt_rights_check (PtConn *c, const char *type, JsonObject *msg, PtFault *f);
/* Whether @c may take children in @tree_id (trees.relay; always on an open
 * server). */
gboolean pt_rights_can_relay (PtConn *c, const char *tree_id);
/* Whether @c may create a tree with the id the server chose. */
gboolean pt_rights_can_publish (PtConn *c, const char *tree_id);
/* Verifies an Authorization header's bearer token for GET /status: 0 if
 * allowed, else the HTTP status (401, 403). */
guint pt_rights_check_admin_header (PtServer *self, const char *authorization);

/* pt-http.c */
gboolean pt_http_listen (PtServer *self, GSocketAddress *addr, GError **error);
void pt_http_stop (PtServer *self);
void pt_http_sweep (PtServer *self, gint64 now);
/* Sockets open: HTTP connections and WebSocket clients. */
guint pt_http_n_sockets (PtServer *self);
