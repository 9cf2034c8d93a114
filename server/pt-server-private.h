/* peertree-server internals shared by pt-server.c (connections, trees) and
 * pt-messaging.c (messages, rooms, targets, streams, services, topics).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything here runs on the server's one GMainContext: no locking.
 */
#pragma once

#include "pt-server.h"
#include "pt-tree.h"
#include "pt-ws.h"

#include <libsoup/soup.h>

/* WebSocket close codes used by the server. */
#define CLOSE_POLICY 1008      /* flood, hello timeout, stream protocol violation */
#define CLOSE_UNSUPPORTED 1003 /* malformed binary frame */
#define CLOSE_TRY_LATER 1013   /* server full */
#define CLOSE_GOING_AWAY 1001  /* server shutting down */
#define CLOSE_TAKEN_OVER 4001  /* another connection took this clientId */
#define CLOSE_DEAD 4002        /* keepalive timeout */

/* Per-client bounds (docs/protocol.md). */
#define PT_MAX_PENDING 256         /* requests awaiting another client's reply */
#define PT_MAX_ROOMS 64
#define PT_MAX_STREAMS 64
#define PT_MAX_SUBSCRIPTIONS 256
#define PT_MAX_SERVICES 16
#define PT_MAX_TOPICS 256          /* per service */
#define PT_MAX_LIST 1000           /* entries in one list-clients reply */
#define PT_STREAM_WINDOW (256 * 1024) /* bytes in flight per stream direction */
#define PT_DEFAULT_TIMEOUT_MS 10000
#define PT_MAX_TIMEOUT_MS 120000

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

  /* state */
  SoupServer *soup;
  guint bound_port;
  GMainContext *context;
  GSource *sweep;
  JsonParser *parser;   /* reused for every message */
  GHashTable *conns;    /* PtConn* -> PtConn* (owning) */
  GHashTable *clients;  /* clientId -> PtConn* (registered only) */
  GHashTable *trees;    /* tree id -> TreeEntry* (owning) */

  PtWsLoop *ws_loop;    /* every client socket, on one epoll set */

  /* the request being dispatched */
  gint64 req_id;
  gboolean req_deferred; /* set by a handler that replies later */
  gboolean req_silent;   /* a tree move that existing media links already reflect */
  void (*after_reply) (PtServer *self, char *arg); /* run once the reply is out */
  char *after_reply_arg;

  /* positions reported after a server restart, waiting for their tree or
   * their parent: tree id -> GPtrArray of Claim* */
  GHashTable *claims;

  /* messaging (pt-messaging.c) */
  guint64 next_ack;
  GHashTable *acks;     /* guint64* ack id -> PtAck* (owning) */
  GHashTable *rooms;    /* room name -> PtRoom* (owning) */
  guint32 next_stream;
  GHashTable *streams;  /* guint32 id -> PtStream* (owning) */
  GHashTable *services; /* name -> PtService* (owning) */
};

typedef struct {
  char *id;
  PtTree *tree;
  guint8 secret_hash[32];   /* proves ownership when the source comes back */
  gboolean has_secret;
  gboolean source_gone;     /* within the source grace period */
  gint64 grace_deadline;
} TreeEntry;

typedef struct {
  PtServer *server;
  PtWs *ws;
  char *client_id;               /* NULL before hello */
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
} PtConn;

typedef struct {
  const char *code;
  char *message;
} Fault;

typedef gboolean (*PtHandler) (PtConn *c, JsonObject *msg, JsonObject **result, Fault *f);

/* pt-server.c */
void pt_fault_clear (Fault *f);
G_GNUC_PRINTF (3, 4) gboolean pt_fault_set (Fault *f, const char *code, const char *fmt, ...);
gboolean pt_valid_id (const char *s);
gboolean pt_get_string (JsonObject *obj, const char *name, gboolean required, const char **out,
    Fault *f);
gboolean pt_get_id (JsonObject *obj, const char *name, gboolean required, const char **out,
    Fault *f);
gboolean pt_get_uint (JsonObject *obj, const char *name, gboolean required, gint64 max,
    gint64 *out, Fault *f);
char *pt_random_id (const char *prefix);
void pt_conn_send (PtConn *c, JsonObject *obj);
void pt_conn_send_binary (PtConn *c, const guint8 *data, gsize len);
void pt_conn_reply_ok (PtConn *c, gint64 id, JsonObject *result);
void pt_conn_reply_error (PtConn *c, gint64 id, const Fault *f);
JsonObject *pt_event_new (const char *name, const char *tree_id);
void pt_send_event_to (PtServer *self, const char *client_id, JsonObject *event);
void pt_conn_gone (PtConn *c, gushort code, const char *reason);
gboolean pt_conn_take_token (PtConn *c);
PtConn *pt_server_lookup (PtServer *self, const char *client_id);

/* pt-messaging.c */
PtHandler pt_messaging_find_handler (const char *type);
void pt_messaging_init (PtServer *self);
void pt_messaging_reset (PtServer *self);   /* drops all state, tells no one */
void pt_messaging_finalize (PtServer *self);
void pt_messaging_conn_gone (PtConn *c);
void pt_messaging_sweep (PtServer *self, gint64 now);
void pt_messaging_binary (PtConn *c, const guint8 *data, gsize len);
void pt_messaging_add_builtin (PtServer *self);
