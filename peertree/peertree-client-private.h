/* libpeertree internals shared between the client, messages and streams.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * PeerTreeClient is written in layers; a file calls only those below it:
 *
 *   peertree-client.c             the GObject: properties, signals, the table
 *                                 of the server's events, init and finalize
 *   peertree-client-tree.c        tree membership: create, join, leave,
 *                                 reconnect-upstream, rejoin, SDP/ICE, tree events
 *   peertree-client-messages.c    the messaging API and its events
 *   peertree-message.c            PeerTreeMessage (a message to answer)
 *   peertree-stream.c             PeerTreeStream (a byte stream)
 *   peertree-client-connection.c  the WebSocket, hello, reconnection, requests,
 *                                 reading the server's messages
 *
 * The connection reaches the files above it only through PtClientHooks,
 * which peertree-client.c hands it from class_init: the event table (event
 * name -> handler), the rejoin after a reconnection, the stream input.
 */
#pragma once

#include "peertree-client.h"
#include "peertree-message.h"
#include "peertree-stream.h"

#include <libsoup/soup.h>

#include "common/pt-protocol.h"

/* one protocol version: the public macro must be the protocol module's */
G_STATIC_ASSERT (PEER_TREE_PROTOCOL_VERSION == PT_PROTOCOL_VERSION);

typedef enum {
  PT_MESSAGE_EVENT,
  PT_MESSAGE_TARGET_REQUEST,
  PT_MESSAGE_STREAM_REQUEST,
  PT_MESSAGE_SERVICE_CALL,
} PtMessageKind;

struct _PeerTreeClient {
  GObject parent_instance;

  char *uri;                    /* one URL, or several, comma-separated */
  guint uri_index;              /* the one connected or tried next */
  guint uri_tries;              /* servers tried in the current attempt */
  char *client_id;
  char *secret;
  char *token;            /* sent in every hello; NULL: none */
  char *tls_ca;           /* PEM file of the CAs trusted for wss://; NULL: the system's */
  char **ice_servers;     /* from the last hello reply: GStreamer-style URIs */
  guint connect_timeout;  /* ms */
  guint request_timeout;  /* ms */
  gboolean auto_reconnect;

  GMainContext *context;
  SoupSession *session;
  SoupWebsocketConnection *ws;
  gboolean ready;         /* hello acknowledged */
  gboolean was_ready;     /* ready at least once: reconnect on loss */
  gboolean closed_by_user;

  GTask *connect_task;        /* the attempt in progress (user's or a reconnect) */
  GCancellable *attempt_cancellable;
  GSource *attempt_timeout;
  gulong user_cancel_id;

  GSource *reconnect_source;
  guint backoff;

  gint64 next_id;
  GHashTable *pending;    /* gint64* id -> Pending* */
  GHashTable *streams;    /* guint32 id -> PeerTreeStream* (unowned; streams unregister) */
  GHashTable *memberships; /* tree id -> Membership*: re-registered after a reconnection */
};

enum {
  PROP_0,
  PROP_URI,
  PROP_CLIENT_ID,
  PROP_SECRET,
  PROP_CONNECT_TIMEOUT,
  PROP_REQUEST_TIMEOUT,
  PROP_AUTO_RECONNECT,
  PROP_CONNECTED,
  PROP_TOKEN,
  PROP_TLS_CA,
  N_PROPS
};
enum {
  SIG_TREE_JOINED,
  SIG_UPSTREAM_CHANGED,
  SIG_DOWNSTREAM_ADDED,
  SIG_DOWNSTREAM_REMOVED,
  SIG_REMOTE_SDP,
  SIG_REMOTE_ICE,
  SIG_TREE_CLOSED,
  SIG_SOURCE_LOST,
  SIG_DATA_KEY_CHANGED,
  SIG_EVENT,
  SIG_ERROR,
  SIG_DISCONNECTED,
  SIG_RECONNECTED,
  SIG_MESSAGE,
  SIG_TARGET_REQUEST,
  SIG_TARGET_DISCONNECTED,
  SIG_STREAM_REQUEST,
  SIG_SERVICE_CALL,
  SIG_TOPIC,
  SIG_TOPIC_DESTROYED,
  N_SIGNALS
};
/* Filled by class_init (peertree-client.c); emitted by every file. */
G_GNUC_INTERNAL extern GParamSpec *pt_props[N_PROPS];
G_GNUC_INTERNAL extern guint pt_signals[N_SIGNALS];

/* What the client does with one event of the server, after ::event was
 * emitted for it. @tree_id is the event's treeId, NULL if it has none. */
typedef void (*PtEventFunc) (PeerTreeClient *self, const char *tree_id, JsonObject *event);

typedef struct {
  const char *name;
  PtEventFunc func;
  gboolean needs_tree;          /* ignored without a treeId */
} PtEventHandler;

/* How the connection calls up, set once from class_init. */
typedef struct {
  const PtEventHandler *events;
  gsize n_events;
  /* After a reconnection, before ::reconnected: re-register tree positions. */
  void (*rejoin) (PeerTreeClient *self);
  /* A binary frame for a stream, and the end of every stream on close. */
  void (*stream_receive) (PeerTreeStream *stream, guint8 op, GBytes *payload);
  void (*stream_fail) (PeerTreeStream *stream, const char *why);
} PtClientHooks;

/* A hook runs synchronously when a request's successful reply is read, before
 * the client handles anything the server sent after it. GTask may complete
 * a task in a later main loop iteration (always, when the reply is read in
 * the same iteration as the request was made), and by then the events that
 * followed the reply (a new child right after create, a parent's offer right
 * after join) would already have been emitted. So what a reply changes in the
 * client (its memberships) and the signals it causes happen in the hook, in
 * the server's order; the typed methods' callbacks only hand the outcome on.
 * @outer is the typed method's task, which the hook may give task data. */
typedef void (*ReplyHook) (PeerTreeClient *self, JsonObject *result, gpointer data);

/* peertree-client-connection.c */
G_GNUC_INTERNAL void _peer_tree_client_set_hooks (const PtClientHooks *hooks);
G_GNUC_INTERNAL void _peer_tree_client_request_with_hook (PeerTreeClient *self, const char *type,
    JsonObject *params, GCancellable *cancellable, ReplyHook hook, GAsyncReadyCallback callback,
    gpointer data);
/* A GAsyncReadyCallback for requests nobody waits for: logs a failure. */
G_GNUC_INTERNAL void _peer_tree_client_log_undelivered (GObject *source, GAsyncResult *res,
    gpointer user_data);
GMainContext *_peer_tree_client_get_context (PeerTreeClient *self);
void _peer_tree_client_send_reply (PeerTreeClient *self, gint64 ack_id, gboolean ok,
    JsonNode *value, const char *message);
gboolean _peer_tree_client_send_frame (PeerTreeClient *self, guint32 stream_id, guint8 op,
    const void *data, gsize len);
void _peer_tree_client_add_stream (PeerTreeClient *self, guint32 stream_id,
    PeerTreeStream *stream);
void _peer_tree_client_remove_stream (PeerTreeClient *self, guint32 stream_id);

/* peertree-message.c */
PeerTreeMessage *_peer_tree_message_new (PeerTreeClient *client, PtMessageKind kind,
    JsonObject *event);

/* peertree-stream.c */
PeerTreeStream *_peer_tree_stream_new (PeerTreeClient *client, guint32 id, const char *peer,
    const char *channel, gsize window);
void _peer_tree_stream_receive (PeerTreeStream *self, guint8 op, GBytes *payload);
void _peer_tree_stream_fail (PeerTreeStream *self, const char *why);

/* peertree-client-tree.c */
G_GNUC_INTERNAL GHashTable *_peer_tree_client_memberships_new (void);
G_GNUC_INTERNAL void _peer_tree_client_rejoin_all (PeerTreeClient *self);
G_GNUC_INTERNAL void _peer_tree_client_on_signal (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_upstream (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_placed (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_downstream_added (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_downstream_removed (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_tree_closed (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_data_key (PeerTreeClient *self, const char *tree_id,
    JsonObject *ev);
G_GNUC_INTERNAL void _peer_tree_client_on_source_lost (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);

/* peertree-client-messages.c */
G_GNUC_INTERNAL void _peer_tree_client_on_message (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_target_request (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_target_disconnected (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_stream_request (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_service_call (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_topic (PeerTreeClient *self, const char *tree_id,
    JsonObject *event);
G_GNUC_INTERNAL void _peer_tree_client_on_topic_destroyed (PeerTreeClient *self,
    const char *tree_id, JsonObject *event);
