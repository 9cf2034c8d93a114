/* ptstream — stream throughput through peertree-server with libpeertree.
 *   ptstream ws://127.0.0.1:PORT MEGABYTES SERVER_PID [SECONDS]
 * Two clients in this process: "src" opens a stream to "dst" and writes
 * MEGABYTES MiB of incompressible bytes in 64 KiB writes (async, as fast as
 * the credit window lets it), then closes; "dst" reads with 64 KiB reads to
 * end-of-file and checks the byte count. Stops after SECONDS (default 60).
 * Prints "RESULT bytes=.. secs=.. mb_per_s=.. cpu_s=.. cpu_ms_per_mb=..".
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <peertree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static guint8 pattern[CHUNK];
static guint64 to_send, written, received;
static gboolean write_done, read_done, failed;
static GOutputStream *out;
static GInputStream *in;
static guint8 rbuf[CHUNK];

static double
proc_cpu_seconds (int pid)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen (path, "r");
  if (!f)
    return -1;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = 0;
  char *p = strrchr (buf, ')');
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double) (ut + st) / sysconf (_SC_CLK_TCK);
}

static void
store (GObject *source, GAsyncResult *res, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (res);
}

static GAsyncResult *
wait_for (GAsyncResult **res)
{
  while (!*res)
    g_main_context_iteration (NULL, TRUE);
  return *res;
}

static PeerTreeClient *
client (const char *url, const char *id)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  PeerTreeClient *c = peer_tree_client_new (url, id);
  peer_tree_client_connect_async (c, NULL, store, &res);
  if (!peer_tree_client_connect_finish (c, wait_for (&res), &error)) {
    fprintf (stderr, "ptstream: connect: %s\n", error->message);
    exit (1);
  }
  return c;
}

static void write_more (void);

static void
on_written (GObject *src, GAsyncResult *res, gpointer data)
{
  g_autoptr (GError) error = NULL;
  gssize n = g_output_stream_write_finish (G_OUTPUT_STREAM (src), res, &error);
  if (n < 0) {
    fprintf (stderr, "ptstream: write: %s\n", error->message);
    failed = write_done = TRUE;
    return;
  }
  written += n;
  write_more ();
}

static void
on_closed (GObject *src, GAsyncResult *res, gpointer data)
{
  g_output_stream_close_finish (G_OUTPUT_STREAM (src), res, NULL);
  write_done = TRUE;
}

static void
write_more (void)
{
  if (written >= to_send) {
    g_output_stream_close_async (out, G_PRIORITY_DEFAULT, NULL, on_closed, NULL);
    return;
  }
  gsize off = written % CHUNK;
  gsize n = MIN (CHUNK - off, to_send - written);
  g_output_stream_write_async (out, pattern + off, n, G_PRIORITY_DEFAULT, NULL, on_written, NULL);
}

static void read_more (void);

static void
on_read (GObject *src, GAsyncResult *res, gpointer data)
{
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (src), res, &error);
  if (n < 0) {
    fprintf (stderr, "ptstream: read: %s\n", error->message);
    failed = read_done = TRUE;
    return;
  }
  if (n == 0) {
    read_done = TRUE;
    return;
  }
  received += n;
  read_more ();
}

static void
read_more (void)
{
  g_input_stream_read_async (in, rbuf, sizeof rbuf, G_PRIORITY_DEFAULT, NULL, on_read, NULL);
}

static void
on_request (PeerTreeClient *c, PeerTreeMessage *msg, GIOStream **accepted)
{
  *accepted = peer_tree_message_accept_stream (msg);
}

int
main (int argc, char **argv)
{
  if (argc < 4 || !strstr (argv[1], "://127.0.0.1:")) {
    fprintf (stderr, "usage: ptstream ws://127.0.0.1:PORT MEGABYTES SERVER_PID [SECONDS]\n");
    return 2;
  }
  to_send = (guint64) atoi (argv[2]) * 1024 * 1024;
  int pid = atoi (argv[3]);
  double limit = argc > 4 ? atof (argv[4]) : 60;
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  for (gsize i = 0; i < CHUNK; i += 4) {
    guint32 r = g_rand_int (rand);
    memcpy (pattern + i, &r, 4);
  }

  g_autoptr (PeerTreeClient) src = client (argv[1], "stream-src");
  g_autoptr (PeerTreeClient) dst = client (argv[1], "stream-dst");
  g_autoptr (GIOStream) incoming = NULL;
  g_signal_connect (dst, "stream-request::bench", G_CALLBACK (on_request), &incoming);

  double cpu0 = proc_cpu_seconds (pid);
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  peer_tree_client_open_stream_async (src, "stream-dst", "bench", NULL, 0, NULL, store, &res);
  g_autoptr (GIOStream) stream = peer_tree_client_open_stream_finish (src, wait_for (&res), &error);
  if (!stream) {
    fprintf (stderr, "ptstream: open: %s\n", error->message);
    return 1;
  }
  while (!incoming)
    g_main_context_iteration (NULL, TRUE);
  out = g_io_stream_get_output_stream (stream);
  in = g_io_stream_get_input_stream (incoming);
  write_more ();
  read_more ();
  gint64 deadline = t0 + (gint64) (limit * G_USEC_PER_SEC);
  while (!(read_done && write_done) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  gint64 t1 = g_get_monotonic_time ();
  double cpu = proc_cpu_seconds (pid) - cpu0;
  double secs = (t1 - t0) / 1e6, mb = received / 1e6;
  printf ("RESULT bytes=%" G_GUINT64_FORMAT " secs=%.3f mb_per_s=%.1f cpu_s=%.3f cpu_ms_per_mb=%.3f"
      " complete=%d\n", received, secs, mb / secs, cpu, mb > 0 ? cpu * 1e3 / mb : 0,
      !failed && received == to_send);
  return failed ? 1 : 0;
}
