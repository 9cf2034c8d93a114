/* A throw-away redis-server on 127.0.0.1 for the cluster tests (--redis):
 * started on a free port (found by binding a socket first: redis-server has no
 * --port 0), without persistence, killed with the test process.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gio/gio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

typedef struct {
  guint port;
  GSubprocess *proc;
  char *url;
} PtTestRedis;

/* Exits 77 (meson's "skipped") when redis-server is not installed. */
static inline void
pt_test_redis_require (void)
{
  g_autofree char *path = g_find_program_in_path ("redis-server");
  if (!path) {
    fprintf (stderr, "SKIP: redis-server is not installed (Debian: apt-get install "
        "redis-server, listed in scripts/deps)\n");
    exit (77);
  }
}

static inline guint
pt_test_free_port (void)
{
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  if (!s || !g_socket_bind (s, any, FALSE, NULL))
    g_error ("cannot bind a socket on 127.0.0.1");
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (s, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static void
pt_test_redis_child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
}

static inline gboolean
pt_test_redis_ping (guint port)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) conn = g_socket_client_connect_to_host (client, "127.0.0.1",
      port, NULL, NULL);
  if (!conn)
    return FALSE;
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (conn));
  char buf[16] = { 0 };
  return g_output_stream_write_all (out, "PING\r\n", 6, NULL, NULL, NULL) &&
      g_input_stream_read (in, buf, sizeof buf - 1, NULL, NULL) > 0 &&
      g_str_has_prefix (buf, "+PONG");
}

/* (Re)starts the server on r->port (picked at the first start). */
static inline void
pt_test_redis_start (PtTestRedis *r)
{
  if (!r->port)
    r->port = pt_test_free_port ();
  g_autofree char *port = g_strdup_printf ("%u", r->port);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_child_setup (l, pt_test_redis_child_setup, NULL, NULL);
  g_autoptr (GError) error = NULL;
  r->proc = g_subprocess_launcher_spawn (l, &error, "redis-server", "--port", port, "--bind",
      "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes",
      "--dir", g_get_tmp_dir (), NULL);
  if (!r->proc)
    g_error ("redis-server: %s", error->message);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!pt_test_redis_ping (r->port)) {
    if (g_get_monotonic_time () > deadline)
      g_error ("redis-server on port %u does not answer", r->port);
    g_usleep (20000);
  }
  if (!r->url)
    r->url = g_strdup_printf ("redis://127.0.0.1:%u", r->port);
}

static inline PtTestRedis *
pt_test_redis_new (void)
{
  pt_test_redis_require ();
  PtTestRedis *r = g_new0 (PtTestRedis, 1);
  pt_test_redis_start (r);
  return r;
}

static inline void
pt_test_redis_kill (PtTestRedis *r)
{
  if (!r->proc)
    return;
  g_subprocess_force_exit (r->proc);
  g_subprocess_wait (r->proc, NULL, NULL);
  g_clear_object (&r->proc);
}

static inline void
pt_test_redis_free (PtTestRedis *r)
{
  pt_test_redis_kill (r);
  g_free (r->url);
  g_free (r);
}
