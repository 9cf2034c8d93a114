/* peertree-server — the server object: its properties and config file,
 * listening, the once-a-second sweep, stopping; it builds the server from the
 * modules (pt-server-private.h lists them).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything runs on one GMainContext (the thread-default one at listen time).
 */
#include "pt-server-private.h"

#include <string.h>

#define HELLO_TIMEOUT_US (10 * G_USEC_PER_SEC)


enum {
  PROP_0,
  PROP_HOST,
  PROP_PORT,
  PROP_K,
  PROP_K1,
  PROP_MAX_MESSAGE_SIZE,
  PROP_KEEPALIVE_INTERVAL,
  PROP_DEAD_TIMEOUT,
  PROP_RATE,
  PROP_BURST,
  PROP_MAX_CLIENTS,
  PROP_MAX_TREES_PER_CLIENT,
  PROP_MAX_BUFFERED,
  PROP_SOURCE_GRACE,
  PROP_ALLOW_TAKEOVER,
  PROP_HTTP_TIMEOUT,
  PROP_AUTH_KEY,
  PROP_MAX_CONNECTIONS_PER_IP,
  PROP_CONNECTION_RATE_PER_IP,
  PROP_CONNECTION_BURST_PER_IP,
  PROP_MAX_TREES_PER_IP,
  PROP_MAX_TREES,
  PROP_STUN,
  PROP_TURN,
  PROP_TURN_SECRET_FILE,
  PROP_TURN_TTL,
  PROP_TLS_CERT,
  PROP_TLS_KEY,
  PROP_ALLOWED_ORIGINS,
  PROP_REDIS,
  PROP_MAX_EVENT_STREAMS,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_FINAL_TYPE (PtServer, pt_server, G_TYPE_OBJECT)


/* ------------------------------------------------------------------------ */
/* Sweep                                                                    */

/* Once a second: reap connections that stopped answering keepalive pings and
 * connections that never said hello; then each module's sweep. */
static gboolean
sweep (gpointer user_data)
{
  PtServer *self = user_data;
  gint64 now = pt_now ();
  g_autoptr (GPtrArray) doomed = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, self->conns);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    PtConn *c = k;
    if (c->gone || c->remote)
      continue;
    /* Only silent clients are pinged, every keepalive-interval. */
    gint64 interval = (gint64) self->keepalive_interval * G_USEC_PER_SEC;
    if (interval && now - c->last_seen >= interval && now - c->last_ping >= interval) {
      pt_ws_ping (c->ws);
      c->last_ping = now;
    }
    if (c->slow || now - c->last_seen > (gint64) self->dead_timeout * G_USEC_PER_SEC ||
        (!c->client_id && now - c->connected_at > HELLO_TIMEOUT_US))
      g_ptr_array_add (doomed, c);
  }
  for (guint i = 0; i < self->hooks->len; i++) {
    const PtHooks *hooks = self->hooks->pdata[i];
    if (hooks->sweep)
      hooks->sweep (self, now);
  }
  pt_http_sweep (self, now);
  pt_dashboard_sweep (self, now);
  pt_limits_sweep (self, now);
  for (guint i = 0; i < doomed->len; i++) {
    PtConn *c = doomed->pdata[i];
    g_debug ("reaping %s", c->client_id ? c->client_id : "(no hello)");
    pt_conn_gone (c, c->slow ? PT_CLOSE_POLICY : c->client_id ? PT_CLOSE_DEAD : PT_CLOSE_POLICY,
        c->slow ? "not reading its messages" : c->client_id ? "keepalive timeout" :
        "no hello in time");
  }
  return G_SOURCE_CONTINUE;
}

gint64 pt_clock_offset;

void
pt_server_sweep_now (PtServer *self)
{
  sweep (self);
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

static void
pt_server_init (PtServer *self)
{
  self->conns = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) pt_conn_free, NULL);
  self->spare_fd = -1;
  self->clients = g_hash_table_new (g_str_hash, g_str_equal);
  pt_limits_init (self);
  pt_dashboard_init (self);
  pt_request_init (self);
  /* The order of registration is the order of the hooks: a client that
   * leaves is taken out of its trees first, then out of messaging. */
  pt_clients_init (self);
  pt_tree_handlers_init (self);
  pt_messaging_init (self);
  pt_services_init (self);
  pt_cluster_init (self);
}

PtServer *
pt_server_new (void)
{
  return g_object_new (PT_TYPE_SERVER, NULL);
}

/* The ICE servers of hello replies: their form, and the TURN secret read. */
static gboolean
pt_server_check_ice (PtServer *self, GError **error)
{
  if (self->stun && *self->stun && !g_str_has_prefix (self->stun, "stun:") &&
      !g_str_has_prefix (self->stun, "stuns:")) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "stun \"%s\" is not stun:HOST:PORT", self->stun);
    return FALSE;
  }
  if (self->turn && *self->turn && !g_str_has_prefix (self->turn, "turn:") &&
      !g_str_has_prefix (self->turn, "turns:")) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "turn \"%s\" is not turn:HOST:PORT[?transport=udp|tcp]", self->turn);
    return FALSE;
  }
  g_clear_pointer (&self->turn_secret, g_free);
  if (self->turn_secret_file && *self->turn_secret_file) {
    g_autofree char *text = NULL;
    if (!g_file_get_contents (self->turn_secret_file, &text, NULL, error))
      return FALSE;
    char *nl = strpbrk (text, "\r\n");
    if (nl)
      *nl = '\0';
    if (*text == '\0') {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
          "%s: the TURN secret is empty", self->turn_secret_file);
      return FALSE;
    }
    self->turn_secret = g_strdup (text);
    memset (text, 0, strlen (text));
  }
  if (self->turn && *self->turn && !self->turn_secret) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "turn needs a turn-secret-file (coturn's static-auth-secret)");
    return FALSE;
  }
  return TRUE;
}

gboolean
pt_server_listen (PtServer *self, GError **error)
{
  g_return_val_if_fail (PT_IS_SERVER (self), FALSE);
  g_return_val_if_fail (self->soup == NULL, FALSE);

  g_clear_pointer (&self->auth_key, g_bytes_unref);
  if (self->auth_key_path && *self->auth_key_path &&
      !(self->auth_key = pt_auth_load_key (self->auth_key_path, error)))
    return FALSE;
  if (!pt_server_check_ice (self, error))
    return FALSE;
  g_clear_object (&self->tls_cert);
  gboolean has_cert = self->tls_cert_path && *self->tls_cert_path;
  gboolean has_key = self->tls_key_path && *self->tls_key_path;
  if (has_cert != has_key) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "TLS needs both tls-cert and tls-key");
    return FALSE;
  }
  if (has_cert && !(self->tls_cert = g_tls_certificate_new_from_files (self->tls_cert_path,
          self->tls_key_path, error)))
    return FALSE;
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (self->host);
  if (!inet) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
        "\"%s\" is not an IP address", self->host);
    return FALSE;
  }
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (inet, self->port);
  if (!pt_http_listen (self, addr, error)) {
    pt_http_stop (self);
    g_clear_pointer (&self->context, g_main_context_unref);
    return FALSE;
  }
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (self->listener, error);
  if (!local) {
    pt_http_stop (self);
    g_clear_pointer (&self->context, g_main_context_unref);
    return FALSE;
  }
  self->bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  self->ws_loop = pt_ws_loop_new (self->context);
  if (!pt_cluster_start (self, error)) {
    g_clear_pointer (&self->ws_loop, pt_ws_loop_free);
    pt_http_stop (self);
    g_clear_pointer (&self->context, g_main_context_unref);
    return FALSE;
  }
  self->sweep = g_timeout_source_new_seconds (1);
  g_source_set_callback (self->sweep, sweep, self, NULL);
  g_source_attach (self->sweep, self->context);
  return TRUE;
}

guint
pt_server_get_port (PtServer *self)
{
  return self->bound_port;
}

char *
pt_server_get_url (PtServer *self)
{
  g_autoptr (GInetAddress) inet = g_inet_address_new_from_string (self->host);
  /* With TLS, ws:// works as well on the same port. */
  const char *scheme = self->tls_cert ? "wss" : "ws";
  if (inet && g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("%s://[%s]:%u", scheme, self->host, self->bound_port);
  return g_strdup_printf ("%s://%s:%u", scheme, self->host, self->bound_port);
}

guint
pt_server_get_n_clients (PtServer *self)
{
  /* the clients connected here, not the proxies of other servers' clients */
  return g_hash_table_size (self->clients) - pt_cluster_n_proxies (self);
}

gboolean
pt_server_is_clustered (PtServer *self)
{
  return pt_cluster_is_up (self);
}

void
pt_server_stop (PtServer *self)
{
  g_return_if_fail (PT_IS_SERVER (self));
  if (self->sweep) {
    g_source_destroy (self->sweep);
    g_clear_pointer (&self->sweep, g_source_unref);
  }

  for (guint i = 0; i < self->hooks->len; i++) {
    const PtHooks *hooks = self->hooks->pdata[i];
    if (hooks->reset)
      hooks->reset (self);
  }
  pt_cluster_stop (self);
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, self->conns);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    PtConn *c = k;
    c->gone = TRUE;
    /* Queued now, written by pt_ws_free() as it closes the socket. */
    pt_ws_close (c->ws, PT_CLOSE_GOING_AWAY, "server shutting down");
  }
  g_hash_table_remove_all (self->clients);
  g_hash_table_remove_all (self->conns);
  pt_dashboard_stop (self);
  g_clear_pointer (&self->ws_loop, pt_ws_loop_free);
  pt_http_stop (self);
  g_clear_pointer (&self->context, g_main_context_unref);
}

static void
pt_server_finalize (GObject *object)
{
  PtServer *self = PT_SERVER (object);
  pt_server_stop (self);
  for (guint i = 0; i < self->hooks->len; i++) {
    const PtHooks *hooks = self->hooks->pdata[i];
    if (hooks->finalize)
      hooks->finalize (self);
  }
  pt_request_finalize (self);
  pt_dashboard_finalize (self);
  g_hash_table_unref (self->clients);
  g_hash_table_unref (self->conns);
  pt_limits_finalize (self);
  g_clear_pointer (&self->auth_key, g_bytes_unref);
  g_free (self->auth_key_path);
  g_free (self->allowed_origins);
  g_strfreev (self->origins);
  g_free (self->host);
  g_free (self->stun);
  g_free (self->turn);
  g_free (self->turn_secret_file);
  g_free (self->tls_cert_path);
  g_free (self->tls_key_path);
  g_free (self->redis_url);
  g_clear_object (&self->tls_cert);
  if (self->turn_secret)
    memset (self->turn_secret, 0, strlen (self->turn_secret));
  g_free (self->turn_secret);
  G_OBJECT_CLASS (pt_server_parent_class)->finalize (object);
}

static guint *
uint_field (PtServer *self, guint prop_id)
{
  switch (prop_id) {
    case PROP_PORT: return &self->port;
    case PROP_K: return &self->k;
    case PROP_K1: return &self->k1;
    case PROP_MAX_MESSAGE_SIZE: return &self->max_message_size;
    case PROP_KEEPALIVE_INTERVAL: return &self->keepalive_interval;
    case PROP_DEAD_TIMEOUT: return &self->dead_timeout;
    case PROP_RATE: return &self->rate;
    case PROP_BURST: return &self->burst;
    case PROP_MAX_CLIENTS: return &self->max_clients;
    case PROP_MAX_TREES_PER_CLIENT: return &self->max_trees_per_client;
    case PROP_MAX_BUFFERED: return &self->max_buffered;
    case PROP_SOURCE_GRACE: return &self->source_grace;
    case PROP_HTTP_TIMEOUT: return &self->http_timeout;
    case PROP_MAX_CONNECTIONS_PER_IP: return &self->max_connections_per_ip;
    case PROP_CONNECTION_RATE_PER_IP: return &self->connection_rate_per_ip;
    case PROP_CONNECTION_BURST_PER_IP: return &self->conn_burst_per_ip;
    case PROP_MAX_TREES_PER_IP: return &self->max_trees_per_ip;
    case PROP_MAX_TREES: return &self->max_trees;
    case PROP_TURN_TTL: return &self->turn_ttl;
    case PROP_MAX_EVENT_STREAMS: return &self->max_event_streams;
    default: return NULL;
  }
}

static char **
string_field (PtServer *self, guint prop_id)
{
  switch (prop_id) {
    case PROP_HOST: return &self->host;
    case PROP_AUTH_KEY: return &self->auth_key_path;
    case PROP_STUN: return &self->stun;
    case PROP_TURN: return &self->turn;
    case PROP_TURN_SECRET_FILE: return &self->turn_secret_file;
    case PROP_TLS_CERT: return &self->tls_cert_path;
    case PROP_TLS_KEY: return &self->tls_key_path;
    case PROP_REDIS: return &self->redis_url;
    default: return NULL;
  }
}

static void
pt_server_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  PtServer *self = PT_SERVER (object);
  guint *field = uint_field (self, prop_id);
  char **sfield = string_field (self, prop_id);
  if (field)
    *field = g_value_get_uint (value);
  else if (prop_id == PROP_AUTH_KEY) {
    g_free (self->auth_key_path);
    self->auth_key_path = g_value_dup_string (value);
  } else if (sfield) {
    g_free (*sfield);
    *sfield = g_value_dup_string (value);
  } else if (prop_id == PROP_ALLOWED_ORIGINS) {
    g_free (self->allowed_origins);
    self->allowed_origins = g_value_dup_string (value);
    g_clear_pointer (&self->origins, g_strfreev);
    if (self->allowed_origins) {
      /* comma- or space-separated; an empty list (no entry) means no check */
      g_auto (GStrv) parts = g_strsplit_set (self->allowed_origins, ", \t", -1);
      GPtrArray *list = g_ptr_array_new ();
      for (guint i = 0; parts[i]; i++)
        if (*parts[i])
          g_ptr_array_add (list, g_strdup (parts[i]));
      g_ptr_array_add (list, NULL);
      self->origins = (char **) g_ptr_array_free (list, FALSE);
      if (!self->origins[0])
        g_clear_pointer (&self->origins, g_strfreev);
    }
  } else if (prop_id == PROP_ALLOW_TAKEOVER)
    self->allow_takeover = g_value_get_boolean (value);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
pt_server_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  PtServer *self = PT_SERVER (object);
  guint *field = uint_field (self, prop_id);
  char **sfield = string_field (self, prop_id);
  if (prop_id == PROP_PORT && self->bound_port)
    g_value_set_uint (value, self->bound_port);
  else if (field)
    g_value_set_uint (value, *field);
  else if (prop_id == PROP_HOST)
    g_value_set_string (value, self->host);
  else if (prop_id == PROP_AUTH_KEY)
    g_value_set_string (value, self->auth_key_path);
  else if (sfield)
    g_value_set_string (value, *sfield);
  else if (prop_id == PROP_ALLOWED_ORIGINS)
    g_value_set_string (value, self->allowed_origins);
  else if (prop_id == PROP_ALLOW_TAKEOVER)
    g_value_set_boolean (value, self->allow_takeover);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static GParamSpec *
uint_prop (const char *name, const char *blurb, guint min, guint max, guint def)
{
  return g_param_spec_uint (name, name, blurb, min, max, def,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
}

static void
pt_server_class_init (PtServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->finalize = pt_server_finalize;
  object_class->set_property = pt_server_set_property;
  object_class->get_property = pt_server_get_property;

  props[PROP_HOST] = g_param_spec_string ("host", "Host",
      "IP address to listen on (127.0.0.1, ::1, 0.0.0.0, ::)", "127.0.0.1",
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_PORT] = uint_prop ("port", "TCP port to listen on; 0 picks a free one (read back "
      "the bound port after listening)", 0, 65535, 8645);
  props[PROP_K] = uint_prop ("k", "Maximum children of a viewer in a tree, and the highest k a "
      "client may request", 1, 64, 4);
  props[PROP_K1] = uint_prop ("k1", "Maximum children of a tree's source, and the highest k1 a "
      "client may request", 1, 256, 10);
  props[PROP_MAX_MESSAGE_SIZE] = uint_prop ("max-message-size", "Largest accepted WebSocket "
      "message in bytes; a larger one closes the connection (code 1009)", 1024, 16 << 20, 64 * 1024);
  props[PROP_KEEPALIVE_INTERVAL] = uint_prop ("keepalive-interval", "Seconds of silence after "
      "which a client is pinged, and between pings while it stays silent (0 = no pings)", 0, 3600,
      3);
  props[PROP_DEAD_TIMEOUT] = uint_prop ("dead-timeout", "Seconds of silence (no message, no pong) "
      "after which a client is considered dead and removed; keep it above twice "
      "keepalive-interval", 1, 86400, 8);
  props[PROP_RATE] = uint_prop ("rate", "Messages per second a client may send on average; "
      "beyond its burst the connection is closed (code 1008)", 1, G_MAXINT, 1000);
  props[PROP_BURST] = uint_prop ("burst", "Messages a client may send at once above its rate",
      1, G_MAXINT, 2000);
  props[PROP_MAX_CLIENTS] = uint_prop ("max-clients", "Most simultaneous connections; further "
      "upgrade requests are refused with HTTP 503", 1, G_MAXINT, 100000);
  props[PROP_MAX_TREES_PER_CLIENT] = uint_prop ("max-trees-per-client", "Most trees one client "
      "may create or join", 1, 4096, 16);
  props[PROP_MAX_BUFFERED] = uint_prop ("max-buffered", "Bytes the server queues to a client "
      "whose socket does not drain before it disconnects it (code 1008)", 64 * 1024, G_MAXINT,
      4 * 1024 * 1024);
  props[PROP_SOURCE_GRACE] = uint_prop ("source-grace", "Seconds a tree outlives the "
      "disconnection of its source, waiting for it to come back with the tree's secret (0: the "
      "tree closes at once); also how long positions reported after a restart wait", 0, 3600, 10);
  props[PROP_ALLOW_TAKEOVER] = g_param_spec_boolean ("allow-takeover", "Allow takeover",
      "Let a new connection take over a connected clientId when it presents the secret the "
      "first connection registered with", FALSE,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_HTTP_TIMEOUT] = uint_prop ("http-timeout", "Seconds an HTTP connection may stay open "
      "without becoming a WebSocket (an unfinished request, GET /status, keep-alive) before it "
      "is closed", 1,
      3600, 10);
  props[PROP_AUTH_KEY] = g_param_spec_string ("auth-key", "Auth key",
      "File holding the HS256 key (at least 32 bytes; trailing newlines ignored) that signs "
      "the clients' tokens: with it, hello needs a token and every request is checked against "
      "its rights; NULL: an open server (read at listen)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_ALLOWED_ORIGINS] = g_param_spec_string ("allowed-origins", "Allowed origins",
      "Comma-separated Origin values (e.g. https://app.example.com) a WebSocket upgrade may "
      "carry; an upgrade with another Origin gets 403, one without Origin (not a browser) is "
      "accepted. NULL or empty: no check", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_MAX_CONNECTIONS_PER_IP] = uint_prop ("max-connections-per-ip", "Most sockets "
      "(HTTP and WebSocket) open from one IP address; further connections are refused at "
      "accept (0: no limit)", 0, G_MAXINT, 0);
  props[PROP_CONNECTION_RATE_PER_IP] = uint_prop ("connection-rate-per-ip", "New connections "
      "per second one IP address may open on average; beyond its burst they are refused at "
      "accept (0: no limit)", 0, G_MAXINT, 0);
  props[PROP_CONNECTION_BURST_PER_IP] = uint_prop ("connection-burst-per-ip", "New connections "
      "one IP address may open at once above connection-rate-per-ip", 1, G_MAXINT, 20);
  props[PROP_MAX_TREES_PER_IP] = uint_prop ("max-trees-per-ip", "Most open trees created from "
      "one IP address (0: no limit)", 0, G_MAXINT, 0);
  props[PROP_MAX_TREES] = uint_prop ("max-trees", "Most trees on the server (0: no limit)", 0,
      G_MAXINT, 0);
  props[PROP_STUN] = g_param_spec_string ("stun", "STUN server", "STUN server handed to every "
      "client in its hello reply, as stun:HOST:PORT (NULL: none)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_TURN] = g_param_spec_string ("turn", "TURN server", "TURN server handed to every "
      "client in its hello reply, as turn:HOST:PORT[?transport=udp|tcp], with credentials "
      "made from turn-secret-file (NULL: none)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_TURN_SECRET_FILE] = g_param_spec_string ("turn-secret-file", "TURN secret file",
      "File whose first line is the TURN server's shared secret (coturn's static-auth-secret "
      "with use-auth-secret): each hello gets TURN REST credentials, username "
      "\"EXPIRY:CLIENTID\", password base64(HMAC-SHA1(secret, username))", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_TLS_CERT] = g_param_spec_string ("tls-cert", "TLS certificate",
      "PEM file of the server's certificate (and chain): with tls-key, the port serves wss:// "
      "and https as well as ws:// and http (read at listen; NULL: plain only)", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_TLS_KEY] = g_param_spec_string ("tls-key", "TLS key",
      "PEM file of tls-cert's private key", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_REDIS] = g_param_spec_string ("redis", "Redis",
      "redis://HOST[:PORT][/DB]: the servers that point at the same Redis form one service "
      "(clients, trees, rooms, services and streams shared, docs/cluster.md); NULL: this "
      "server alone", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  props[PROP_TURN_TTL] = uint_prop ("turn-ttl", "Seconds the TURN credentials of a hello stay "
      "valid (a client gets new ones each time it reconnects)", 60, 7 * 86400, 86400);
  props[PROP_MAX_EVENT_STREAMS] = uint_prop ("max-event-streams", "Most subscribers of GET "
      "/dashboard/events at once; further ones get HTTP 503", 0, 4096, 16);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

gboolean
pt_server_load_config (PtServer *self, const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error))
    return FALSE;
  g_auto (GStrv) keys = g_key_file_get_keys (kf, "server", NULL, NULL);
  for (guint i = 0; keys && keys[i]; i++) {
    GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (self), keys[i]);
    if (!pspec) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
          "%s: unknown key \"%s\" in [server]", path, keys[i]);
      return FALSE;
    }
    g_autoptr (GError) local = NULL;
    if (pspec->value_type == G_TYPE_STRING) {
      g_autofree char *v = g_key_file_get_string (kf, "server", keys[i], &local);
      if (v)
        g_object_set (self, keys[i], v, NULL);
    } else if (pspec->value_type == G_TYPE_BOOLEAN) {
      gboolean v = g_key_file_get_boolean (kf, "server", keys[i], &local);
      if (!local)
        g_object_set (self, keys[i], v, NULL);
    } else {
      GParamSpecUInt *u = G_PARAM_SPEC_UINT (pspec);
      guint64 v = g_key_file_get_uint64 (kf, "server", keys[i], &local);
      if (!local && (v < u->minimum || v > u->maximum))
        g_set_error (&local, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
            "must be between %u and %u", u->minimum, u->maximum);
      if (!local)
        g_object_set (self, keys[i], (guint) v, NULL);
    }
    if (local) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
          "%s: key \"%s\": %s", path, keys[i], local->message);
      return FALSE;
    }
  }
  return TRUE;
}
