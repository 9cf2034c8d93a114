/* peertree-server — command line entry point.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-auth.h"
#include "pt-server.h"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static gboolean
on_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

/* Every client is a descriptor: use all the hard limit allows (the server
 * keeps its sockets below the soft limit, pt-http.c). */
static void
raise_fd_limit (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
}

static void
add_patterns (JsonObject *parent, const char *name, char **patterns)
{
  if (!patterns || !patterns[0])
    return;
  JsonArray *a = json_array_new ();
  for (guint i = 0; patterns[i]; i++)
    json_array_add_string_element (a, patterns[i]);
  json_object_set_array_member (parent, name, a);
}

/* peertree-server token --key FILE --sub ID [--exp-in S] [--publish P]...:
 * prints a token signed with the key. */
static int
token_main (int argc, char **argv)
{
  g_autofree char *key_path = NULL, *sub = NULL;
  gint64 exp_in = 3600, nbf_in = 0;
  gboolean admin = FALSE;
  g_auto (GStrv) publish = NULL, view = NULL, relay = NULL, rooms = NULL, clients = NULL,
      provide = NULL, call = NULL, subscribe = NULL;
  GOptionEntry entries[] = {
    { "key", 0, 0, G_OPTION_ARG_FILENAME, &key_path, "The server's --auth-key file", "FILE" },
    { "sub", 0, 0, G_OPTION_ARG_STRING, &sub, "The clientId the token binds", "ID" },
    { "exp-in", 0, 0, G_OPTION_ARG_INT64, &exp_in, "Seconds until it expires (default 3600)",
      "SECONDS" },
    { "nbf-in", 0, 0, G_OPTION_ARG_INT64, &nbf_in, "Seconds until it becomes valid (default: "
      "valid now, no nbf)", "SECONDS" },
    { "publish", 0, 0, G_OPTION_ARG_STRING_ARRAY, &publish, "Trees it may create or reclaim "
      "as source (repeatable glob)", "PATTERN" },
    { "view", 0, 0, G_OPTION_ARG_STRING_ARRAY, &view, "Trees it may join", "PATTERN" },
    { "relay", 0, 0, G_OPTION_ARG_STRING_ARRAY, &relay, "Trees where it may take children "
      "(without: a leaf)", "PATTERN" },
    { "room", 0, 0, G_OPTION_ARG_STRING_ARRAY, &rooms, "Rooms it may join and emit to",
      "PATTERN" },
    { "client", 0, 0, G_OPTION_ARG_STRING_ARRAY, &clients, "ClientIds it may address (emit, "
      "add-target, stream-open, is-connected, list-rooms)", "PATTERN" },
    { "provide", 0, 0, G_OPTION_ARG_STRING_ARRAY, &provide, "Services it may provide",
      "PATTERN" },
    { "call", 0, 0, G_OPTION_ARG_STRING_ARRAY, &call, "Services it may call", "PATTERN" },
    { "subscribe", 0, 0, G_OPTION_ARG_STRING_ARRAY, &subscribe, "Topics it may subscribe to, "
      "as SERVICE/TOPIC", "PATTERN" },
    { "admin", 0, 0, G_OPTION_ARG_NONE, &admin, "Every right, GET /status, the peertree "
      "service, list-clients", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— print a token for a client of "
      "peertree-server --auth-key FILE");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "peertree-server token: %s\n", error->message);
    return 2;
  }
  if (!key_path || !sub) {
    fprintf (stderr, "peertree-server token: --key and --sub are required\n");
    return 2;
  }
  if (exp_in <= 0 || nbf_in < 0) {
    fprintf (stderr, "peertree-server token: --exp-in must be above 0, --nbf-in not below\n");
    return 2;
  }
  g_autoptr (GBytes) key = pt_auth_load_key (key_path, &error);
  if (!key) {
    fprintf (stderr, "peertree-server token: %s\n", error->message);
    return 1;
  }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr (JsonObject) claims = json_object_new ();
  json_object_set_string_member (claims, "sub", sub);
  json_object_set_int_member (claims, "iat", now);
  if (nbf_in)
    json_object_set_int_member (claims, "nbf", now + nbf_in);
  json_object_set_int_member (claims, "exp", now + nbf_in + exp_in);
  JsonObject *trees = json_object_new ();
  add_patterns (trees, "publish", publish);
  add_patterns (trees, "view", view);
  add_patterns (trees, "relay", relay);
  json_object_set_object_member (claims, "trees", trees);
  add_patterns (claims, "rooms", rooms);
  add_patterns (claims, "clients", clients);
  JsonObject *services = json_object_new ();
  add_patterns (services, "provide", provide);
  add_patterns (services, "call", call);
  add_patterns (services, "subscribe", subscribe);
  json_object_set_object_member (claims, "services", services);
  if (admin)
    json_object_set_boolean_member (claims, "admin", TRUE);
  g_autofree char *token = pt_auth_sign (key, claims);
  printf ("%s\n", token);
  return 0;
}

int
main (int argc, char **argv)
{
  g_autofree char *host = NULL, *config = NULL, *auth_key = NULL;
  g_autofree char *stun = NULL, *turn = NULL, *turn_secret = NULL;
  g_autofree char *tls_cert = NULL, *tls_key = NULL;
  g_autofree char *origins = NULL, *redis = NULL;
  gint port = -1, k = -1, k1 = -1, grace = -1;
  gint max_conns_ip = -1, conn_rate_ip = -1, max_trees_ip = -1, max_trees = -1;
  gboolean allow_takeover = FALSE;

  if (argc > 1 && g_strcmp0 (argv[1], "token") == 0)
    return token_main (argc - 1, argv + 1);
  GOptionEntry entries[] = {
    { "host", 0, 0, G_OPTION_ARG_STRING, &host, "IP address to listen on (default 127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "TCP port; 0 = pick a free one (default 8645)", "PORT" },
    { "k", 0, 0, G_OPTION_ARG_INT, &k, "Maximum children per viewer (default 4)", "K" },
    { "k1", 0, 0, G_OPTION_ARG_INT, &k1, "Maximum children of a source (default 10)", "K1" },
    { "source-grace", 0, 0, G_OPTION_ARG_INT, &grace,
      "Seconds a tree waits for its disconnected source to come back (default 10; 0 = close at once)",
      "SECONDS" },
    { "allow-takeover", 0, 0, G_OPTION_ARG_NONE, &allow_takeover,
      "Let a connection take over a clientId by presenting its secret", NULL },
    { "auth-key", 0, 0, G_OPTION_ARG_FILENAME, &auth_key,
      "HS256 key file: hello then needs a token signed with it (mint them with "
      "\"peertree-server token\"); without it the server is open", "FILE" },
    { "allowed-origins", 0, 0, G_OPTION_ARG_STRING, &origins,
      "Comma-separated Origin values a WebSocket upgrade may carry (others get 403; "
      "clients that send no Origin are accepted); default: no check", "LIST" },
    { "max-connections-per-ip", 0, 0, G_OPTION_ARG_INT, &max_conns_ip,
      "Most sockets open from one IP address (default 0: no limit)", "N" },
    { "connection-rate-per-ip", 0, 0, G_OPTION_ARG_INT, &conn_rate_ip,
      "New connections per second from one IP address, bursts of connection-burst-per-ip "
      "(default 0: no limit)", "N" },
    { "max-trees-per-ip", 0, 0, G_OPTION_ARG_INT, &max_trees_ip,
      "Most open trees created from one IP address (default 0: no limit)", "N" },
    { "max-trees", 0, 0, G_OPTION_ARG_INT, &max_trees,
      "Most trees on the server (default 0: no limit)", "N" },
    { "stun", 0, 0, G_OPTION_ARG_STRING, &stun,
      "STUN server every client is told to use (hello reply)", "stun:HOST:PORT" },
    { "turn", 0, 0, G_OPTION_ARG_STRING, &turn,
      "TURN server every client is told to use, with short-lived credentials (needs "
      "--turn-secret)", "turn:HOST:PORT[?transport=udp|tcp]" },
    { "turn-secret", 0, 0, G_OPTION_ARG_FILENAME, &turn_secret,
      "File holding the TURN server's shared secret (coturn: use-auth-secret, "
      "static-auth-secret)", "FILE" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert,
      "PEM certificate (chain): serve wss:// and https on the same port as ws:// "
      "(needs --tls-key)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key, "PEM private key of --tls-cert",
      "FILE" },
    { "redis", 0, 0, G_OPTION_ARG_STRING, &redis,
      "Form one service with the other servers on this Redis (docs/cluster.md)",
      "redis://HOST:PORT[/DB]" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &config,
      "GKeyFile whose [server] group sets any server property (host, port, k, k1, "
      "max-message-size, keepalive-interval, dead-timeout, rate, burst, max-clients, "
      "max-trees-per-client, max-buffered, source-grace, allow-takeover, http-timeout, "
      "auth-key, max-connections-per-ip, connection-rate-per-ip, connection-burst-per-ip, "
      "max-trees-per-ip, max-trees, stun, turn, turn-secret-file, turn-ttl, tls-cert, tls-key, allowed-origins, redis); flags override it",
      "FILE" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— peertree signalling server");
  g_autoptr (GError) error = NULL;
  g_option_context_set_description (ctx, "Tokens for --auth-key: peertree-server token --key "
      "FILE --sub ID [--exp-in SECONDS] [--publish|--view|--relay|--room|--client|--provide|"
      "--call|--subscribe PATTERN]... [--admin] (see peertree-server token --help)");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "peertree-server: %s\n", error->message);
    return 2;
  }

  g_autoptr (PtServer) server = pt_server_new ();
  if (config && !pt_server_load_config (server, config, &error)) {
    fprintf (stderr, "peertree-server: %s\n", error->message);
    return 2;
  }
  struct { const char *name; gint value, min, max; } ints[] = {
    { "port", port, 0, 65535 }, { "k", k, 1, 64 }, { "k1", k1, 1, 256 },
    { "source-grace", grace, 0, 3600 },
    { "max-connections-per-ip", max_conns_ip, 0, G_MAXINT },
    { "connection-rate-per-ip", conn_rate_ip, 0, G_MAXINT },
    { "max-trees-per-ip", max_trees_ip, 0, G_MAXINT },
    { "max-trees", max_trees, 0, G_MAXINT },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (ints); i++) {
    if (ints[i].value == -1)
      continue;
    if (ints[i].value < ints[i].min || ints[i].value > ints[i].max) {
      fprintf (stderr, "peertree-server: --%s must be between %d and %d\n", ints[i].name,
          ints[i].min, ints[i].max);
      return 2;
    }
    g_object_set (server, ints[i].name, (guint) ints[i].value, NULL);
  }
  /* string flags: each sets the property of its name when given */
  struct { const char *name; const char *value; } strings[] = {
    { "host", host }, { "auth-key", auth_key }, { "stun", stun }, { "turn", turn },
    { "turn-secret-file", turn_secret }, { "tls-cert", tls_cert }, { "tls-key", tls_key },
    { "allowed-origins", origins }, { "redis", redis },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (strings); i++)
    if (strings[i].value)
      g_object_set (server, strings[i].name, strings[i].value, NULL);
  if (allow_takeover)
    g_object_set (server, "allow-takeover", TRUE, NULL);

  raise_fd_limit ();
  /* Handlers first: whoever reads the URL line below may signal at once. */
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);

  if (!pt_server_listen (server, &error)) {
    fprintf (stderr, "peertree-server: cannot listen: %s\n", error->message);
    return 1;
  }
  g_autofree char *url = pt_server_get_url (server);
  guint vk, vk1;
  g_object_get (server, "k", &vk, "k1", &vk1, NULL);
  g_autofree char *key = NULL;
  g_object_get (server, "auth-key", &key, NULL);
  printf ("peertree-server listening on %s (k=%u, k1=%u%s)\n", url, vk, vk1,
      key && *key ? ", tokens required" : "");
  fflush (stdout);

  g_main_loop_run (loop);
  pt_server_stop (server);
  printf ("peertree-server stopped\n");
  return 0;
}
