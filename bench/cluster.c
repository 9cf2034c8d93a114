/* Several peertree-server processes on one redis-server (--redis) against one
 * server alone: emit latency and throughput across servers, joins per second
 * into one tree from three servers, and what a server's death costs (time
 * until its clients are back in their tree through another server).
 *
 *   build/bench/cluster build/server/peertree-server [--emits 2000] [--burst 20000]
 *       [--joiners 300] [--victims 30]
 *
 * Starts its own redis-server (127.0.0.1, a free port, no persistence) and
 * servers; prints one Markdown section on stdout, progress on stderr.
 * Every loop is bounded; every address is 127.0.0.1.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peertree-client.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <glib/gstdio.h>

static const char *server_bin;
static char *config_path;

static void G_GNUC_NORETURN G_GNUC_PRINTF (1, 2)
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "bench cluster: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (1);
}

/* Iterates the default context until @cond or @ms pass; dies on timeout. */
#define RUN_UNTIL(cond, ms)                                                      \
  G_STMT_START {                                                               \
    gint64 _end = g_get_monotonic_time () + (gint64) (ms) * 1000;              \
    while (!(cond)) {                                                          \
      if (g_get_monotonic_time () > _end)                                      \
        die ("timed out waiting for %s", #cond);                               \
      g_main_context_iteration (NULL, TRUE);                                   \
    }                                                                          \
  } G_STMT_END

static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static guint
free_port (void)
{
  g_autoptr (GSocket) s = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (lo, 0);
  if (!g_socket_bind (s, any, FALSE, NULL))
    die ("cannot bind on 127.0.0.1");
  g_autoptr (GSocketAddress) bound = g_socket_get_local_address (s, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static GSubprocess *
start_redis (char **url)
{
  guint port = free_port ();
  g_autofree char *ps = g_strdup_printf ("%u", port);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_child_setup (l, child_setup, NULL, NULL);
  g_autoptr (GError) error = NULL;
  GSubprocess *p = g_subprocess_launcher_spawn (l, &error, "redis-server", "--port", ps,
      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", g_get_tmp_dir (), NULL);
  if (!p)
    die ("redis-server: %s", error->message);
  for (int i = 0; i < 500; i++) {
    g_autoptr (GSocketClient) c = g_socket_client_new ();
    g_autoptr (GSocketConnection) conn = g_socket_client_connect_to_host (c, "127.0.0.1", port,
        NULL, NULL);
    if (conn)
      break;
    g_usleep (10000);
  }
  *url = g_strdup_printf ("redis://127.0.0.1:%u", port);
  return p;
}

typedef struct {
  GSubprocess *proc;
  char *url;
  guint port;
} Server;

/* A server process; with @redis, waits until it is connected to it. */
static Server *
start_server (const char *redis)
{
  Server *s = g_new0 (Server, 1);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (l, child_setup, NULL, NULL);
  g_autoptr (GError) error = NULL;
  GPtrArray *argv = g_ptr_array_new ();
  const char *base[] = { server_bin, "--port", "0", "--config", config_path, "--source-grace",
    "30" };
  for (guint i = 0; i < G_N_ELEMENTS (base); i++)
    g_ptr_array_add (argv, (gpointer) base[i]);
  if (redis) {
    g_ptr_array_add (argv, "--redis");
    g_ptr_array_add (argv, (gpointer) redis);
  }
  g_ptr_array_add (argv, NULL);
  s->proc = g_subprocess_launcher_spawnv (l, (const char *const *) argv->pdata, &error);
  g_ptr_array_unref (argv);
  if (!s->proc)
    die ("%s: %s", server_bin, error->message);
  g_autoptr (GDataInputStream) out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (s->proc));
  g_autofree char *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
  const char *at = line ? strstr (line, "ws://") : NULL;
  if (!at)
    die ("no URL from the server");
  s->url = g_strndup (at, strcspn (at, " "));
  s->port = atoi (strrchr (s->url, ':') + 1);
  if (redis) {
    g_autoptr (GDataInputStream) err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (s->proc));
    for (int i = 0; i < 100; i++) {
      g_autofree char *l2 = g_data_input_stream_read_line (err, NULL, NULL, NULL);
      if (!l2)
        die ("server exited");
      if (strstr (l2, "connected to Redis"))
        break;
    }
  }
  return s;
}

static void
stop_server (Server *s)
{
  if (s->proc) {
    g_subprocess_send_signal (s->proc, SIGKILL);
    g_subprocess_wait (s->proc, NULL, NULL);
    g_clear_object (&s->proc);
  }
  g_free (s->url);
  g_free (s);
}

static void
store (GObject *source, GAsyncResult *res, gpointer data)
{
  *(GAsyncResult **) data = g_object_ref (res);
}

static PeerTreeClient *
client_new (const char *url, const char *id, const char *secret)
{
  PeerTreeClient *c = g_object_new (PEER_TREE_TYPE_CLIENT, "uri", url, "client-id", id,
      "secret", secret, NULL);
  GAsyncResult *res = NULL;
  g_autoptr (GError) error = NULL;
  peer_tree_client_connect_async (c, NULL, store, &res);
  RUN_UNTIL (res != NULL, 20000);
  if (!peer_tree_client_connect_finish (c, res, &error))
    die ("connect %s to %s: %s", id, url, error->message);
  g_object_unref (res);
  return c;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
percentile (GArray *v, double p)
{
  g_array_sort (v, cmp_double);
  guint rank = (guint) (p / 100.0 * v->len + 0.5);
  rank = CLAMP (rank, 1, v->len);
  return g_array_index (v, double, rank - 1);
}

/* ------------------------------------------------------------------------ */
/* Emits                                                                    */

static guint received;

static void
on_message (PeerTreeClient *c, PeerTreeMessage *m, gpointer data)
{
  received++;
  if (peer_tree_message_expects_reply (m))
    peer_tree_message_reply (m, NULL);
}

typedef struct {
  double p50, p99, rate;
} EmitResult;

static EmitResult
bench_emits (const char *label, const char *url_a, const char *url_b, guint n, guint burst)
{
  EmitResult r = { 0 };
  g_autofree char *ida = g_strdup_printf ("%s-sender", label);
  g_autofree char *idb = g_strdup_printf ("%s-receiver", label);
  g_autoptr (PeerTreeClient) a = client_new (url_a, ida, NULL);
  g_autoptr (PeerTreeClient) b = client_new (url_b, idb, NULL);
  g_signal_connect (b, "message", G_CALLBACK (on_message), NULL);
  g_autoptr (GArray) lat = g_array_new (FALSE, FALSE, sizeof (double));
  /* one emit with ack at a time: its round trip */
  for (guint i = 0; i < n + 50; i++) {
    GAsyncResult *res = NULL;
    gint64 t0 = g_get_monotonic_time ();
    peer_tree_client_emit_async (a, idb, "ping", NULL, TRUE, 10000, NULL, store, &res);
    RUN_UNTIL (res != NULL, 20000);
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) v = peer_tree_client_emit_finish (a, res, &error);
    if (error)
      die ("emit: %s", error->message);
    g_object_unref (res);
    double ms = (g_get_monotonic_time () - t0) / 1000.0;
    if (i >= 50) /* warm-up */
      g_array_append_val (lat, ms);
  }
  r.p50 = percentile (lat, 50);
  r.p99 = percentile (lat, 99);
  /* fire-and-forget: a burst, until the receiver has every message */
  received = 0;
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = 0; i < burst; i++) {
    peer_tree_client_emit (a, idb, "m", NULL);
    if (i % 256 == 0)
      while (g_main_context_iteration (NULL, FALSE))
        ;
  }
  RUN_UNTIL (received >= burst, 60000);
  r.rate = burst / ((g_get_monotonic_time () - t0) / 1e6);
  fprintf (stderr, "emits %s: p50 %.3f ms, p99 %.3f ms, %.0f msg/s\n", label, r.p50, r.p99, r.rate);
  peer_tree_client_close (a);
  peer_tree_client_close (b);
  return r;
}

/* ------------------------------------------------------------------------ */
/* Joins                                                                    */

static double
bench_joins (const char *label, Server **servers, guint n_servers, guint joiners)
{
  g_autofree char *src_id = g_strdup_printf ("%s-src", label);
  g_autofree char *tree = g_strdup_printf ("%s-tree", label);
  g_autoptr (PeerTreeClient) src = client_new (servers[0]->url, src_id, "s");
  GAsyncResult *res = NULL;
  peer_tree_client_create_async (src, tree, 4, 10, NULL, store, &res);
  RUN_UNTIL (res != NULL, 20000);
  g_autoptr (GError) error = NULL;
  g_autofree char *t = peer_tree_client_create_finish (src, res, &error);
  if (!t)
    die ("create: %s", error->message);
  g_clear_object (&res);
  PeerTreeClient **v = g_new0 (PeerTreeClient *, joiners);
  GAsyncResult **r = g_new0 (GAsyncResult *, joiners);
  for (guint i = 0; i < joiners; i++) {
    g_autofree char *id = g_strdup_printf ("%s-v%u", label, i);
    v[i] = client_new (servers[i % n_servers]->url, id, NULL);
  }
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = 0; i < joiners; i++)
    peer_tree_client_join_async (v[i], tree, NULL, store, &r[i]);
  for (guint i = 0; i < joiners; i++) {
    RUN_UNTIL (r[i] != NULL, 60000);
    if (!peer_tree_client_join_finish (v[i], r[i], NULL, NULL, &error))
      die ("join: %s", error->message);
    g_object_unref (r[i]);
  }
  double rate = joiners / ((g_get_monotonic_time () - t0) / 1e6);
  fprintf (stderr, "joins %s: %.0f joins/s\n", label, rate);
  for (guint i = 0; i < joiners; i++) {
    peer_tree_client_close (v[i]);
    g_object_unref (v[i]);
  }
  peer_tree_client_close (src);
  g_free (v);
  g_free (r);
  return rate;
}

/* ------------------------------------------------------------------------ */
/* A server's death                                                         */

/* The number of members of @tree in GET /status of @s. */
static guint
tree_size (Server *s, const char *tree)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u/status", s->port);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, NULL);
  if (!body)
    return 0;
  g_autoptr (JsonNode) root = json_from_string (g_bytes_get_data (body, NULL), NULL);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return 0;
  JsonArray *trees = json_object_get_array_member (json_node_get_object (root), "trees");
  for (guint i = 0; trees && i < json_array_get_length (trees); i++) {
    JsonObject *t = json_array_get_object_element (trees, i);
    if (g_strcmp0 (json_object_get_string_member (t, "id"), tree) == 0)
      return json_object_get_int_member (t, "size");
  }
  return 0;
}

typedef struct {
  gint64 killed_at;
  GArray *times; /* ms from the kill to each client's reconnection */
} Death;

static void
on_connected (PeerTreeClient *c, GParamSpec *pspec, Death *d)
{
  if (peer_tree_client_is_connected (c) && d->killed_at) {
    double ms = (g_get_monotonic_time () - d->killed_at) / 1000.0;
    g_array_append_val (d->times, ms);
  }
}

static void
bench_death (Server *a, Server *b, Server *c, guint victims, double *p50, double *max,
    double *all_back)
{
  g_autoptr (PeerTreeClient) src = client_new (a->url, "death-src", "s");
  GAsyncResult *res = NULL;
  peer_tree_client_create_async (src, "death", 4, 10, NULL, store, &res);
  RUN_UNTIL (res != NULL, 20000);
  g_autofree char *t = peer_tree_client_create_finish (src, res, NULL);
  g_clear_object (&res);
  g_autofree char *urls = g_strdup_printf ("%s,%s", b->url, c->url);
  Death d = { 0, g_array_new (FALSE, FALSE, sizeof (double)) };
  PeerTreeClient **v = g_new0 (PeerTreeClient *, victims);
  for (guint i = 0; i < victims; i++) {
    g_autofree char *id = g_strdup_printf ("death-v%u", i);
    g_autofree char *secret = g_strdup_printf ("secret-%u", i);
    v[i] = client_new (urls, id, secret);
    peer_tree_client_join_async (v[i], "death", NULL, store, &res);
    RUN_UNTIL (res != NULL, 20000);
    if (!peer_tree_client_join_finish (v[i], res, NULL, NULL, NULL))
      die ("join death");
    g_clear_object (&res);
    g_signal_connect (v[i], "notify::connected", G_CALLBACK (on_connected), &d);
  }
  d.killed_at = g_get_monotonic_time ();
  g_subprocess_send_signal (b->proc, SIGKILL);
  /* every client reconnected (through C), then all in A's tree again */
  RUN_UNTIL (d.times->len >= victims, 60000);
  gint64 end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  while (tree_size (a, "death") != victims + 1 && g_get_monotonic_time () < end)
    for (int i = 0; i < 20; i++)
      g_main_context_iteration (NULL, FALSE);
  *all_back = (g_get_monotonic_time () - d.killed_at) / 1000.0;
  *p50 = percentile (d.times, 50);
  *max = percentile (d.times, 100);
  fprintf (stderr, "death: reconnected p50 %.0f ms, max %.0f ms, all in the tree %.0f ms\n",
      *p50, *max, *all_back);
  for (guint i = 0; i < victims; i++) {
    peer_tree_client_close (v[i]);
    g_object_unref (v[i]);
  }
  g_free (v);
  g_array_unref (d.times);
}

int
main (int argc, char **argv)
{
  gint emits = 2000, burst = 20000, joiners = 300, victims = 30;
  GOptionEntry entries[] = {
    { "emits", 0, 0, G_OPTION_ARG_INT, &emits, "emits with ack timed one at a time", "N" },
    { "burst", 0, 0, G_OPTION_ARG_INT, &burst, "fire-and-forget emits for the throughput", "N" },
    { "joiners", 0, 0, G_OPTION_ARG_INT, &joiners, "clients joining one tree at once", "N" },
    { "victims", 0, 0, G_OPTION_ARG_INT, &victims, "clients of the server killed", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("PEERTREE-SERVER");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, NULL) || argc < 2)
    die ("usage: cluster build/server/peertree-server [--emits N] [--burst N] [--joiners N] "
        "[--victims N]");
  if (emits < 1 || emits > 100000 || burst < 1 || burst > 1000000 || joiners < 1 ||
      joiners > 5000 || victims < 1 || victims > 1000)
    die ("a count out of range");
  server_bin = argv[1];
  g_autofree char *path = g_find_program_in_path ("redis-server");
  if (!path)
    die ("redis-server is not installed");
  /* the bursts go beyond the default message rate */
  int fd = g_file_open_tmp ("pt-bench-XXXXXX.conf", &config_path, NULL);
  if (fd < 0)
    die ("cannot write a config file");
  close (fd);
  g_file_set_contents (config_path, "[server]\nrate=10000000\nburst=10000000\n"
      "max-buffered=268435456\n", -1, NULL);

  g_autofree char *redis_url = NULL;
  GSubprocess *redis = start_redis (&redis_url);
  Server *single = start_server (NULL);
  Server *s[3];
  for (int i = 0; i < 3; i++)
    s[i] = start_server (redis_url);

  EmitResult e1 = bench_emits ("single", single->url, single->url, emits, burst);
  EmitResult e2 = bench_emits ("same", s[0]->url, s[0]->url, emits, burst);
  EmitResult e3 = bench_emits ("cross", s[0]->url, s[1]->url, emits, burst);
  double j1 = bench_joins ("single", &single, 1, joiners);
  double j3 = bench_joins ("three", s, 3, joiners);
  double d50, dmax, dall;
  bench_death (s[0], s[1], s[2], victims, &d50, &dmax, &dall);

  printf ("## Several servers (--redis)\n\n");
  printf ("`bench/cluster` (the last section of `bench/run`, or by hand: `build/bench/cluster build/server/peertree-server`): one `peertree-server` alone against three "
      "on one `redis-server` (all on 127.0.0.1, each a process of its own, with libpeertree "
      "clients in the benchmark's process; the machine's 2 cores shared by all of them).\n\n");
  printf ("| emits | round trip with ack p50 (ms) | p99 (ms) | fire-and-forget (msg/s) |\n");
  printf ("|---|---:|---:|---:|\n");
  printf ("| one server alone | %.3f | %.3f | %.0f |\n", e1.p50, e1.p99, e1.rate);
  printf ("| sender and receiver on the same server of the three | %.3f | %.3f | %.0f |\n",
      e2.p50, e2.p99, e2.rate);
  printf ("| sender and receiver on two servers | %.3f | %.3f | %.0f |\n\n", e3.p50, e3.p99,
      e3.rate);
  printf ("%d emits with ack, one at a time (the receiver replies at once), then %d "
      "fire-and-forget emits in a burst until the receiver has them all.\n\n", emits, burst);
  printf ("| joins into one tree | clients | joins/s |\n|---|---:|---:|\n");
  printf ("| one server alone | %d | %.0f |\n", joiners, j1);
  printf ("| three servers (clients spread evenly, the tree on the first) | %d | %.0f |\n\n",
      joiners, j3);
  printf ("| a server killed (SIGKILL) | clients | reconnected p50 (ms) | last reconnected (ms) "
      "| all back in the tree (ms) |\n|---|---:|---:|---:|---:|\n");
  printf ("| its clients move to another server (uri lists two) and rejoin | %d | %.0f | %.0f | "
      "%.0f |\n", victims, d50, dmax, dall);

  for (int i = 0; i < 3; i++)
    if (s[i]->proc)
      stop_server (s[i]);
  stop_server (single);
  g_subprocess_send_signal (redis, SIGKILL);
  g_subprocess_wait (redis, NULL, NULL);
  g_object_unref (redis);
  g_unlink (config_path);
  return 0;
}
