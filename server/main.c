/* peertree-server — command line entry point.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
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

int
main (int argc, char **argv)
{
  g_autofree char *host = NULL, *config = NULL, *stun = NULL, *turn = NULL, *turn_secret = NULL;
  gint port = -1, k = -1, k1 = -1, grace = -1;
  gboolean allow_takeover = FALSE;
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
    { "stun", 0, 0, G_OPTION_ARG_STRING, &stun,
      "STUN server every client is told to use (hello reply)", "stun:HOST:PORT" },
    { "turn", 0, 0, G_OPTION_ARG_STRING, &turn,
      "TURN server every client is told to use, with short-lived credentials (needs "
      "--turn-secret)", "turn:HOST:PORT[?transport=udp|tcp]" },
    { "turn-secret", 0, 0, G_OPTION_ARG_FILENAME, &turn_secret,
      "File holding the TURN server's shared secret (coturn: use-auth-secret, "
      "static-auth-secret)", "FILE" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &config,
      "GKeyFile whose [server] group sets any server property (host, port, k, k1, "
      "max-message-size, keepalive-interval, dead-timeout, rate, burst, max-clients, "
      "max-trees-per-client, max-buffered, source-grace, allow-takeover, http-timeout, stun, "
      "turn, turn-secret-file, turn-ttl); flags "
      "override it",
      "FILE" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— peertree signalling server");
  g_autoptr (GError) error = NULL;
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
  if (host)
    g_object_set (server, "host", host, NULL);
  if (allow_takeover)
    g_object_set (server, "allow-takeover", TRUE, NULL);
  if (stun)
    g_object_set (server, "stun", stun, NULL);
  if (turn)
    g_object_set (server, "turn", turn, NULL);
  if (turn_secret)
    g_object_set (server, "turn-secret-file", turn_secret, NULL);

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
  printf ("peertree-server listening on %s (k=%u, k1=%u)\n", url, vk, vk1);
  fflush (stdout);

  g_main_loop_run (loop);
  pt_server_stop (server);
  printf ("peertree-server stopped\n");
  return 0;
}
