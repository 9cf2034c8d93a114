/* libpeertree — client of peertree-server: the GObject
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Properties, signals and the table of the server's events. The work is
 * done in the files below (see peertree-client-private.h): the connection
 * and requests in peertree-client-connection.c, tree membership in
 * peertree-client-tree.c, the messaging API in peertree-client-messages.c.
 */
#include "peertree-client-private.h"

/**
 * SECTION:peertree-client
 * @title: PeerTreeClient
 * @short_description: signalling client of peertree-server
 *
 * A #PeerTreeClient holds one WebSocket connection to a peertree-server,
 * speaks its JSON protocol (docs/protocol.md) and turns the server's events
 * into GObject signals.
 *
 * The client belongs to the thread-default #GMainContext of the thread that
 * created it: every signal is emitted and every async callback is invoked
 * there, and its methods must be called from that thread.
 *
 * When the connection drops after it was established, the client emits
 * #PeerTreeClient::disconnected, reconnects with exponential backoff (100 ms
 * doubling to 5 s, with jitter) under the same clientId and secret, and emits
 * #PeerTreeClient::reconnected. On reconnection it re-registers every tree
 * position it holds (the `rejoin` request): a source reclaims its tree with
 * its secret, a viewer reports its parent. After a server restart the server
 * rebuilds its trees from these reports while the media links keep running;
 * a viewer that cannot keep its parent gets #PeerTreeClient::upstream-changed,
 * one whose tree is gone gets #PeerTreeClient::tree-closed.
 */

G_DEFINE_FINAL_TYPE (PeerTreeClient, peer_tree_client, G_TYPE_OBJECT)

/* ------------------------------------------------------------------------ */
/* The server's events (docs/protocol.md)                                   */

/* Each event of the server is first emitted as ::event (detail: its name),
 * then handed to its handler here. An event without a handler (one a newer
 * server sends) is only ::event. Tree events are ignored without a treeId. */
static const PtEventHandler event_handlers[] = {
  /* trees: peertree-client-tree.c */
  { PT_EV_UPSTREAM, _peer_tree_client_on_upstream, TRUE },
  { PT_EV_PLACED, _peer_tree_client_on_placed, TRUE },
  { PT_EV_DOWNSTREAM_ADDED, _peer_tree_client_on_downstream_added, TRUE },
  { PT_EV_DOWNSTREAM_REMOVED, _peer_tree_client_on_downstream_removed, TRUE },
  { PT_EV_SIGNAL, _peer_tree_client_on_signal, TRUE },
  { PT_EV_TREE_CLOSED, _peer_tree_client_on_tree_closed, TRUE },
  { PT_EV_SOURCE_LOST, _peer_tree_client_on_source_lost, TRUE },
  { PT_EV_DATA_KEY, _peer_tree_client_on_data_key, TRUE },
  /* messaging: peertree-client-messages.c */
  { PT_EV_MESSAGE, _peer_tree_client_on_message, FALSE },
  { PT_EV_TARGET_REQUEST, _peer_tree_client_on_target_request, FALSE },
  { PT_EV_TARGET_DISCONNECTED, _peer_tree_client_on_target_disconnected, FALSE },
  { PT_EV_STREAM_REQUEST, _peer_tree_client_on_stream_request, FALSE },
  { PT_EV_SERVICE_CALL, _peer_tree_client_on_service_call, FALSE },
  { PT_EV_TOPIC, _peer_tree_client_on_topic, FALSE },
  { PT_EV_TOPIC_DESTROYED, _peer_tree_client_on_topic_destroyed, FALSE },
};

static const PtClientHooks client_hooks = {
  .events = event_handlers,
  .n_events = G_N_ELEMENTS (event_handlers),
  .rejoin = _peer_tree_client_rejoin_all,
  .stream_receive = _peer_tree_stream_receive,
  .stream_fail = _peer_tree_stream_fail,
};

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

/**
 * peer_tree_client_new:
 * @uri: the server, `ws://HOST:PORT` or `wss://HOST:PORT`
 * @client_id: (nullable): the clientId to ask for, or %NULL to let the
 *   server assign one
 *
 * Returns: (transfer full): a new, unconnected client bound to the
 *   thread-default main context.
 */
PeerTreeClient *
peer_tree_client_new (const char *uri, const char *client_id)
{
  return g_object_new (PEER_TREE_TYPE_CLIENT, "uri", uri, "client-id", client_id, NULL);
}

/**
 * peer_tree_client_get_uri:
 * @self: a #PeerTreeClient
 *
 * Returns: the server URL.
 */
const char *
peer_tree_client_get_uri (PeerTreeClient *self)
{
  return self->uri;
}

/**
 * peer_tree_client_get_client_id:
 * @self: a #PeerTreeClient
 *
 * Returns: (nullable): the clientId (assigned by the server if none was
 *   asked for), %NULL before the first connection.
 */
const char *
peer_tree_client_get_client_id (PeerTreeClient *self)
{
  return self->client_id;
}

/**
 * peer_tree_client_get_ice_servers:
 * @self: a #PeerTreeClient
 *
 * The ICE servers the server handed out in its last hello reply (it does
 * when it runs with `--stun`/`--turn`), as webrtcbin takes them:
 * `stun://HOST:PORT` and `turn://USER:PASSWORD@HOST:PORT[?transport=…]`
 * (user and password URI-escaped). TURN credentials are short-lived: each
 * (re)connection brings new ones.
 *
 * Returns: (transfer full) (nullable): a %NULL-terminated array, or %NULL
 *   when the server gave none (or before the first connection).
 */
char **
peer_tree_client_get_ice_servers (PeerTreeClient *self)
{
  g_return_val_if_fail (PEER_TREE_IS_CLIENT (self), NULL);
  return g_strdupv (self->ice_servers);
}

/**
 * peer_tree_client_is_connected:
 * @self: a #PeerTreeClient
 *
 * Returns: %TRUE while connected and registered with the server.
 */
gboolean
peer_tree_client_is_connected (PeerTreeClient *self)
{
  return self->ready;
}

static void
peer_tree_client_init (PeerTreeClient *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->session = soup_session_new ();
  self->pending = g_hash_table_new (g_int64_hash, g_int64_equal);
  self->streams = g_hash_table_new (NULL, NULL);
  self->memberships = _peer_tree_client_memberships_new ();
  self->secret = g_uuid_string_random ();
}

static void
peer_tree_client_dispose (GObject *object)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  if (self->session)
    peer_tree_client_close (self);
  g_clear_object (&self->session);
  G_OBJECT_CLASS (peer_tree_client_parent_class)->dispose (object);
}

static void
peer_tree_client_finalize (GObject *object)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  g_hash_table_unref (self->pending);
  g_hash_table_unref (self->streams);
  g_hash_table_unref (self->memberships);
  g_main_context_unref (self->context);
  g_free (self->uri);
  g_free (self->client_id);
  g_free (self->secret);
  g_free (self->token);
  g_free (self->tls_ca);
  g_strfreev (self->ice_servers);
  G_OBJECT_CLASS (peer_tree_client_parent_class)->finalize (object);
}

static void
peer_tree_client_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  switch (prop_id) {
    case PROP_URI:
      g_free (self->uri);
      self->uri = g_value_dup_string (value);
      break;
    case PROP_CLIENT_ID:
      g_free (self->client_id);
      self->client_id = g_value_dup_string (value);
      break;
    case PROP_SECRET:
      if (g_value_get_string (value)) {
        g_free (self->secret);
        self->secret = g_value_dup_string (value);
      }
      break;
    case PROP_TOKEN:
      g_free (self->token);
      self->token = g_value_dup_string (value);
      break;
    case PROP_TLS_CA:
      g_free (self->tls_ca);
      self->tls_ca = g_value_dup_string (value);
      break;
    case PROP_CONNECT_TIMEOUT:
      self->connect_timeout = g_value_get_uint (value);
      break;
    case PROP_REQUEST_TIMEOUT:
      self->request_timeout = g_value_get_uint (value);
      break;
    case PROP_AUTO_RECONNECT:
      self->auto_reconnect = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
peer_tree_client_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  PeerTreeClient *self = PEER_TREE_CLIENT (object);
  switch (prop_id) {
    case PROP_URI: g_value_set_string (value, self->uri); break;
    case PROP_CLIENT_ID: g_value_set_string (value, self->client_id); break;
    case PROP_SECRET: g_value_set_string (value, self->secret); break;
    case PROP_TOKEN: g_value_set_string (value, self->token); break;
    case PROP_TLS_CA: g_value_set_string (value, self->tls_ca); break;
    case PROP_CONNECT_TIMEOUT: g_value_set_uint (value, self->connect_timeout); break;
    case PROP_REQUEST_TIMEOUT: g_value_set_uint (value, self->request_timeout); break;
    case PROP_AUTO_RECONNECT: g_value_set_boolean (value, self->auto_reconnect); break;
    case PROP_CONNECTED: g_value_set_boolean (value, self->ready); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
peer_tree_client_class_init (PeerTreeClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = peer_tree_client_dispose;
  object_class->finalize = peer_tree_client_finalize;
  object_class->set_property = peer_tree_client_set_property;
  object_class->get_property = peer_tree_client_get_property;
  _peer_tree_client_set_hooks (&client_hooks);

  /**
   * PeerTreeClient:uri:
   *
   * The server's URL, `ws://HOST:PORT` or `wss://HOST:PORT`; or the URLs of
   * several servers of one service (peertree-server --redis), comma-separated:
   * the client connects to the first, and moves to the next one (then
   * rejoins its trees there) when it cannot connect or its connection drops.
   */
  pt_props[PROP_URI] = g_param_spec_string ("uri", "URI",
      "URL of peertree-server (ws://HOST:PORT or wss://HOST:PORT), or several servers of one "
      "service, comma-separated (tried in turn)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:client-id:
   *
   * The identity on the server; %NULL until assigned when none is asked for.
   */
  pt_props[PROP_CLIENT_ID] = g_param_spec_string ("client-id", "Client ID",
      "Identity to register with the server (NULL: the server assigns one)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:secret:
   *
   * Secret registered with the clientId; a server started with takeover
   * allowed lets a later connection that presents it take the clientId over.
   * Random unless set.
   */
  pt_props[PROP_SECRET] = g_param_spec_string ("secret", "Secret",
      "Secret registered with the clientId, used to take it over after a reconnection "
      "(random by default)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:token:
   *
   * The token (a JWT signed by the server's key) sent in hello, at the first
   * connection and at every reconnection; needed by a server started with
   * `--auth-key`. It binds the clientId: with no #PeerTreeClient:client-id
   * the server takes the token's. Set a fresh one before the old expires
   * for reconnections to succeed. %NULL: none.
   */
  pt_props[PROP_TOKEN] = g_param_spec_string ("token", "Token",
      "Token (JWT) sent in hello, for a server that requires one; used again at every "
      "reconnection", NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:tls-ca:
   *
   * A PEM file of the certificate authorities trusted for a `wss://` server,
   * for a server whose certificate a private CA signed; read at every
   * connection attempt. %NULL: the system's CAs. A server whose certificate
   * is not trusted fails the connection (a #G_TLS_ERROR_BAD_CERTIFICATE
   * message in the error).
   */
  pt_props[PROP_TLS_CA] = g_param_spec_string ("tls-ca", "TLS CA file",
      "PEM file of the CAs trusted for wss:// (NULL: the system's)", NULL,
      G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:connect-timeout:
   *
   * Milliseconds a connection attempt may take, hello included (0: none).
   */
  pt_props[PROP_CONNECT_TIMEOUT] = g_param_spec_uint ("connect-timeout", "Connect timeout",
      "Milliseconds a connection attempt (WebSocket + hello) may take; 0 = no limit",
      0, G_MAXUINT, 5000, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:request-timeout:
   *
   * Milliseconds to wait for the reply to a request (0: none).
   */
  pt_props[PROP_REQUEST_TIMEOUT] = g_param_spec_uint ("request-timeout", "Request timeout",
      "Milliseconds to wait for a reply before failing a request; 0 = no limit",
      0, G_MAXUINT, 10000, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:auto-reconnect:
   *
   * Whether a lost connection is re-established with backoff.
   */
  pt_props[PROP_AUTO_RECONNECT] = g_param_spec_boolean ("auto-reconnect", "Auto reconnect",
      "Reconnect with exponential backoff (100 ms to 5 s) when an established connection drops",
      TRUE, G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * PeerTreeClient:connected:
   *
   * Whether the client is connected and registered.
   */
  pt_props[PROP_CONNECTED] = g_param_spec_boolean ("connected", "Connected",
      "Whether the client is connected and registered with the server", FALSE,
      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, pt_props);

  /**
   * PeerTreeClient::tree-joined:
   * @self: the client
   * @tree_id: the tree
   * @depth: the client's depth (0 for the source)
   *
   * The client created (depth 0) or joined a tree.
   */
  pt_signals[SIG_TREE_JOINED] = g_signal_new ("tree-joined", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_UINT);
  /**
   * PeerTreeClient::upstream-changed:
   * @self: the client
   * @tree_id: the tree
   * @parent_id: the new parent, which will send an SDP offer
   * @depth: the client's new depth
   *
   * The client got a parent: after a join, a reconnect-upstream, or because
   * the server re-parented it when its parent left.
   */
  pt_signals[SIG_UPSTREAM_CHANGED] = g_signal_new ("upstream-changed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_UINT);
  /**
   * PeerTreeClient::downstream-added:
   * @self: the client
   * @tree_id: the tree
   * @child_id: the new child, to which this client sends an SDP offer
   *
   * The server gave this client a child.
   */
  pt_signals[SIG_DOWNSTREAM_ADDED] = g_signal_new ("downstream-added", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::downstream-removed:
   * @self: the client
   * @tree_id: the tree
   * @child_id: the child that left, disconnected or moved
   *
   * A child is no longer this client's.
   */
  pt_signals[SIG_DOWNSTREAM_REMOVED] = g_signal_new ("downstream-removed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::remote-sdp:
   * @self: the client
   * @tree_id: the tree
   * @peer_id: the parent or child that sent it
   * @type: `"offer"` or `"answer"`
   * @sdp: the session description
   *
   * An SDP arrived from a neighbour in a tree.
   */
  pt_signals[SIG_REMOTE_SDP] = g_signal_new ("remote-sdp", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 4, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::remote-ice:
   * @self: the client
   * @tree_id: the tree
   * @peer_id: the parent or child that sent it
   * @mline_index: the m-line index
   * @candidate: the candidate
   *
   * An ICE candidate arrived from a neighbour in a tree.
   */
  pt_signals[SIG_REMOTE_ICE] = g_signal_new ("remote-ice", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 4, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_UINT, G_TYPE_STRING);
  /**
   * PeerTreeClient::tree-closed:
   * @self: the client
   * @tree_id: the tree
   * @reason: why, e.g. `source-left` or `source-disconnected`
   *
   * A tree this client was in no longer exists.
   */
  pt_signals[SIG_TREE_CLOSED] = g_signal_new ("tree-closed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::source-lost:
   * @self: the client
   * @tree_id: the tree
   * @grace_seconds: how long the server keeps the tree for its source (its
   *   `source-grace`; 0 if the server did not say)
   *
   * The source of a tree this client is in disconnected without leaving.
   * The server keeps the tree, and every member its place, for
   * @grace_seconds: a source that comes back within that time takes the tree
   * over again (its children may get #PeerTreeClient::upstream-changed);
   * otherwise #PeerTreeClient::tree-closed follows, reason `source-timeout`.
   * Emitted after #PeerTreeClient::event with detail `source-lost`.
   */
  pt_signals[SIG_SOURCE_LOST] = g_signal_new ("source-lost", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_UINT);
  /**
   * PeerTreeClient::data-key-changed:
   * @self: the client
   * @tree_id: the tree
   * @data_key: the base64 of the source's new Ed25519 public key
   *
   * The tree's source came back with a new key (a restarted process): its
   * data is signed with this key from now on, and numbered from 1 again.
   * peer_tree_client_dup_data_key() gives it too.
   */
  pt_signals[SIG_DATA_KEY_CHANGED] = g_signal_new ("data-key-changed",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2,
      G_TYPE_STRING, G_TYPE_STRING);
  /**
   * PeerTreeClient::event:
   * @self: the client
   * @name: the event name
   * @event: the whole event object
   *
   * Every event the server sends, with the event name as detail (connect to
   * `event::tree-closed` for one kind). Emitted before the typed signals.
   */
  pt_signals[SIG_EVENT] = g_signal_new ("event", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING,
      JSON_TYPE_OBJECT);
  /**
   * PeerTreeClient::error:
   * @self: the client
   * @error: what went wrong
   *
   * An error not tied to a request.
   */
  pt_signals[SIG_ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
  /**
   * PeerTreeClient::disconnected:
   * @self: the client
   *
   * The established connection was lost (not emitted for
   * peer_tree_client_close()). Reconnection follows when
   * #PeerTreeClient:auto-reconnect is set.
   */
  pt_signals[SIG_DISCONNECTED] = g_signal_new ("disconnected", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * PeerTreeClient::reconnected:
   * @self: the client
   *
   * The client is connected again after #PeerTreeClient::disconnected.
   */
  pt_signals[SIG_RECONNECTED] = g_signal_new ("reconnected", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * PeerTreeClient::message:
   * @self: the client
   * @message: the message: sender, event name, arguments, room
   *
   * A message from another client, sent to this one or to a room it is in.
   * The detail is the event name: connect to `message::chat` to receive only
   * "chat" events (peer_tree_client_connect_message_from() also filters by
   * sender). Answer with peer_tree_message_reply() when the sender waits.
   */
  pt_signals[SIG_MESSAGE] = g_signal_new ("message", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::target-request:
   * @self: the client
   * @message: the request; its sender wants to pair with this client
   *
   * Another client called peer_tree_client_add_target_async() on this one.
   * Refuse with peer_tree_message_reply_error(); otherwise it is accepted.
   * Once paired, either side's disconnection is announced to the other by
   * #PeerTreeClient::target-disconnected.
   */
  pt_signals[SIG_TARGET_REQUEST] = g_signal_new ("target-request", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::target-disconnected:
   * @self: the client
   * @client_id: the paired client that disconnected
   *
   * A client paired by add-target (either way) disconnected.
   */
  pt_signals[SIG_TARGET_DISCONNECTED] = g_signal_new ("target-disconnected",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      G_TYPE_STRING);
  /**
   * PeerTreeClient::stream-request:
   * @self: the client
   * @message: the request: sender, channel (as the name), arguments
   *
   * Another client wants a byte stream on a channel (the detail). Accept with
   * peer_tree_message_accept_stream(); a request nobody accepts is refused.
   */
  pt_signals[SIG_STREAM_REQUEST] = g_signal_new ("stream-request", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::service-call:
   * @self: the client
   * @message: the call: caller, method (as the name), service, arguments
   *
   * A call to a service this client provides (the detail is the service).
   * Answer with peer_tree_message_reply() or peer_tree_message_reply_error().
   */
  pt_signals[SIG_SERVICE_CALL] = g_signal_new ("service-call", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
      PEER_TREE_TYPE_MESSAGE);
  /**
   * PeerTreeClient::topic:
   * @self: the client
   * @service: the service
   * @topic: the topic (also the detail)
   * @args: what was published
   *
   * A publication on a topic this client subscribed to.
   */
  pt_signals[SIG_TOPIC] = g_signal_new ("topic", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED, 0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_STRING,
      G_TYPE_STRING, JSON_TYPE_ARRAY);
  /**
   * PeerTreeClient::topic-destroyed:
   * @self: the client
   * @service: the service
   * @topic: the topic
   *
   * A topic this client subscribed to was destroyed (or its service went
   * away); the subscription is gone.
   */
  pt_signals[SIG_TOPIC_DESTROYED] = g_signal_new ("topic-destroyed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
}
