/* bench/data-chain — data down a chain: throughput, latency per hop, and the
 * CPU of the source's signatures and the members' verifications.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   data-chain ws://127.0.0.1:PORT [DEPTH] [MESSAGES]
 *
 * A source (peertreesink data=true, no media) and DEPTH viewers
 * (peertreesrc) in one process, in a chain (k1=1, k=1): each viewer verifies
 * every message, delivers it (data-received) and forwards it to the next.
 *
 *  1. latency: 500 messages of 256 bytes, one every 2 ms (the links never
 *     queue), each stamped at send-data and at each viewer's data-received
 *     (one monotonic clock): hop d = arrival at depth d − at depth d−1;
 *  2. throughput: MESSAGES back to back (fewer for large ones, at most
 *     64 MiB) per payload size, timed from the first send-data to the last
 *     arrival at the deepest viewer; the process's CPU (getrusage) over it;
 *  3. the signature alone: GnuTLS Ed25519 sign and verify of the bytes a
 *     message signs (payload + 60 bytes), CPU time per operation in one
 *     thread, outside GStreamer.
 */
#include "bench-util.h"

#include <sys/resource.h>
#include <time.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>

#define MAX_DEPTH 16
#define LAT_MESSAGES 500
#define LAT_SIZE 256
#define MAX_MESSAGES 20000

static struct {
  gint64 sent[MAX_MESSAGES + 1];        /* µs, by seq */
  gint64 seen[MAX_DEPTH + 1][MAX_MESSAGES + 1];
  gint received[MAX_DEPTH + 1];         /* atomic */
  guint64 base;                 /* seq of this phase's first message - 1 */
} B;

typedef struct {
  guint depth;
  GstElement *pipeline;
  GstElement *element;
} Node;

static void
on_data_received (GstElement *src, GBytes *data, guint64 seq, guint channel, gpointer user)
{
  Node *node = user;
  guint64 i = seq - B.base;

  (void) src;
  (void) data;
  (void) channel;
  if (seq > B.base && i <= MAX_MESSAGES)
    B.seen[node->depth][i] = g_get_monotonic_time ();
  g_atomic_int_inc (&B.received[node->depth]);
}

static guint64
data_stat (GstElement *e, const gchar *field)
{
  g_autoptr (GstStructure) stats = NULL;
  const GValue *v;
  guint64 r = 0;
  guint u = 0;

  g_object_get (e, "stats", &stats, NULL);
  v = stats ? gst_structure_get_value (stats, "data") : NULL;
  if (v == NULL)
    return 0;
  if (!gst_structure_get_uint64 (gst_value_get_structure (v), field, &r)
      && gst_structure_get_uint (gst_value_get_structure (v), field, &u))
    r = u;
  return r;
}

static gdouble
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec +
      ru.ru_stime.tv_usec) / 1e6;
}

static gdouble
thread_cpu_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
reset_phase (guint depth, guint64 base)
{
  B.base = base;
  memset (B.sent, 0, sizeof B.sent);
  memset (B.seen, 0, sizeof B.seen);
  for (guint d = 0; d <= depth; d++)
    g_atomic_int_set (&B.received[d], 0);
}

static void
send_one (GstElement *sink, gsize size, guint64 i)
{
  guint8 *d = g_malloc (size);
  g_autoptr (GBytes) b = NULL;
  gboolean ok = FALSE;

  memset (d, (gint) (i & 0xff), size);
  b = g_bytes_new_take (d, size);
  if (i <= MAX_MESSAGES)
    B.sent[i] = g_get_monotonic_time ();
  g_signal_emit_by_name (sink, "send-data", b, &ok);
  if (!ok)
    bench_die ("send-data refused message %" G_GUINT64_FORMAT, i);
}

static void
wait_received (guint depth, gint n, guint seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;

  while (g_atomic_int_get (&B.received[depth]) < n && g_get_monotonic_time () < deadline)
    bench_run_for (5);
  if (g_atomic_int_get (&B.received[depth]) < n)
    bench_die ("depth %u received %d of %d messages within %u s", depth,
        g_atomic_int_get (&B.received[depth]), n, seconds);
}

static void
signature_costs (void)
{
  static const gsize sizes[] = { 64, 1024, 16384, 65536 };
  gnutls_privkey_t priv;
  gnutls_pubkey_t pub;

  if (gnutls_privkey_init (&priv) < 0
      || gnutls_privkey_generate2 (priv, GNUTLS_PK_EDDSA_ED25519, 0, 0, NULL, 0) < 0
      || gnutls_pubkey_init (&pub) < 0 || gnutls_pubkey_import_privkey (pub, priv, 0, 0) < 0)
    bench_die ("GnuTLS Ed25519 key");

  printf ("Ed25519 by GnuTLS %s, CPU time per operation in one thread (the bytes a message "
      "signs: payload + 60), %s:\n\n", gnutls_check_version (NULL),
      "over 2 000 signatures and 2 000 verifications per size");
  printf ("| payload (bytes) | sign (µs) | verify (µs) | sign + 1 verification per member, "
      "7-peer tree (µs) |\n|---:|---:|---:|---:|\n");
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    gsize len = sizes[s] + 60;
    guint8 *buf = g_malloc0 (len);
    gnutls_datum_t data = { buf, len }, sig = { NULL, 0 };
    const guint n = 2000;
    gdouble t0, sign_us, verify_us;

    t0 = thread_cpu_us ();
    for (guint i = 0; i < n; i++) {
      buf[0] = i & 0xff;
      gnutls_free (sig.data);
      if (gnutls_privkey_sign_data2 (priv, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) < 0)
        bench_die ("sign");
    }
    sign_us = (thread_cpu_us () - t0) / n;
    t0 = thread_cpu_us ();
    for (guint i = 0; i < n; i++)
      if (gnutls_pubkey_verify_data2 (pub, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) < 0)
        bench_die ("verify");
    verify_us = (thread_cpu_us () - t0) / n;
    printf ("| %" G_GSIZE_FORMAT " | %.1f | %.1f | %.1f |\n", sizes[s], sign_us, verify_us,
        sign_us + 6 * verify_us);
    gnutls_free (sig.data);
    g_free (buf);
  }
  printf ("\n");
  gnutls_pubkey_deinit (pub);
  gnutls_privkey_deinit (priv);
}

int
main (int argc, char **argv)
{
  static const gsize sizes[] = { 64, 1024, 16384, 65536 };
  const gchar *url;
  guint depth, messages;
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  Node nodes[MAX_DEPTH + 1] = { {0,}, };
  GstElement *sink;
  guint64 seq = 0;

  bench_init (&argc, &argv);
  url = argv[1];
  depth = argc > 2 ? (guint) atoi (argv[2]) : 6;
  depth = CLAMP (depth, 1, MAX_DEPTH);
  messages = argc > 3 ? (guint) atoi (argv[3]) : 10000;
  messages = CLAMP (messages, 100, MAX_MESSAGES);

  desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=bench-data k1=1 k=1 data=true "
      "local-addresses=" BENCH_LOCAL, url);
  sink = gst_parse_launch (desc, &error);
  if (sink == NULL)
    bench_die ("source: %s", error->message);
  /* one element: wrap it */
  nodes[0].pipeline = gst_pipeline_new ("source");
  gst_bin_add (GST_BIN (nodes[0].pipeline), gst_object_ref (sink));
  nodes[0].element = sink;
  gst_element_set_state (nodes[0].pipeline, GST_STATE_PLAYING);
  bench_run_for (500);

  for (guint d = 1; d <= depth; d++) {
    g_autofree gchar *name = g_strdup_printf ("viewer-%u", d);
    gint64 deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;

    nodes[d].depth = d;
    nodes[d].pipeline = gst_pipeline_new (name);
    nodes[d].element = gst_element_factory_make ("peertreesrc", NULL);
    g_object_set (nodes[d].element, "server", url, "tree-id", "bench-data", "client-id", name,
        "local-addresses", BENCH_LOCAL, NULL);
    gst_bin_add (GST_BIN (nodes[d].pipeline), nodes[d].element);
    g_signal_connect (nodes[d].element, "data-received", G_CALLBACK (on_data_received),
        &nodes[d]);
    gst_element_set_state (nodes[d].pipeline, GST_STATE_PLAYING);
    /* its parent has it live (the data channel is open, RESUME is in) */
    while (data_stat (nodes[d - 1].element, "live-children") < 1
        && g_get_monotonic_time () < deadline)
      bench_run_for (10);
    bench_check_bus (nodes[d].pipeline, name);
    if (data_stat (nodes[d - 1].element, "live-children") < 1)
      bench_die ("%s has no data channel within 15 s", name);
    fprintf (stderr, "%s is live\n", name);
  }
  bench_run_for (500);

  printf ("## Data down the tree\n\n");
  printf ("A chain (k1=1, k=1) of a source (`peertreesink data=true`, no media) and %u "
      "viewers (`peertreesrc`), all in one process over 127.0.0.1: each viewer verifies "
      "every message (Ed25519 signature, sequence number), delivers it (`data-received`) "
      "and forwards it, unchanged, to the next over a reliable, ordered WebRTC data channel "
      "(SCTP over DTLS). The source signs each message in `send-data`.\n\n", depth);

  /* 1. latency */
  reset_phase (depth, seq);
  for (guint i = 1; i <= LAT_MESSAGES; i++) {
    send_one (sink, LAT_SIZE, i);
    bench_run_for (2);
  }
  seq += LAT_MESSAGES;
  wait_received (depth, LAT_MESSAGES, 30);
  printf ("Latency: %u messages of %u bytes, one every 2 ms; *from send-data* is the time "
      "from the source's `send-data` (signature included) to the viewer's "
      "`data-received`, *hop* from the previous node's to this one's.\n\n", LAT_MESSAGES,
      LAT_SIZE);
  printf ("| depth | messages | hop p50 (ms) | hop p99 (ms) | from send-data p50 (ms) | "
      "from send-data p99 (ms) |\n|---:|---:|---:|---:|---:|---:|\n");
  for (guint d = 1; d <= depth; d++) {
    g_autoptr (GArray) hop = g_array_new (FALSE, FALSE, sizeof (gdouble));
    g_autoptr (GArray) total = g_array_new (FALSE, FALSE, sizeof (gdouble));

    for (guint i = 1; i <= LAT_MESSAGES; i++) {
      gint64 prev = d == 1 ? B.sent[i] : B.seen[d - 1][i];

      if (B.seen[d][i] && prev) {
        gdouble h = (B.seen[d][i] - prev) / 1e3, t = (B.seen[d][i] - B.sent[i]) / 1e3;

        g_array_append_val (hop, h);
        g_array_append_val (total, t);
      }
    }
    printf ("| %u | %u | %.2f | %.2f | %.2f | %.2f |\n", d, hop->len,
        bench_percentile (hop, 50), bench_percentile (hop, 99),
        bench_percentile (total, 50), bench_percentile (total, 99));
  }
  printf ("\n");

  /* 2. throughput */
  printf ("Throughput: messages sent back to back by `send-data` (which waits while a "
      "child has more than 1 MiB queued), timed from the first send to the last arrival "
      "at depth %u; every viewer got every message. CPU: the whole process (source and "
      "%u viewers, signalling included), in seconds of CPU per second.\n\n", depth, depth);
  printf ("| payload (bytes) | messages | seconds | messages/s | payload MB/s | process CPU "
      "(cores) | CPU per message per node (µs) |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    guint n = MIN (messages, (guint) ((64u << 20) / sizes[s]));
    gint64 t0, t1;
    gdouble cpu0, cpu1;

    n = MAX (n, 100u);
    reset_phase (depth, seq);
    cpu0 = cpu_seconds ();
    t0 = g_get_monotonic_time ();
    for (guint i = 1; i <= n; i++) {
      send_one (sink, sizes[s], i);
      if (i % 256 == 0)
        while (g_main_context_iteration (NULL, FALSE));
    }
    seq += n;
    wait_received (depth, (gint) n, 120);
    t1 = 0;
    for (guint i = 1; i <= n; i++)
      t1 = MAX (t1, B.seen[depth][i]);
    cpu1 = cpu_seconds ();
    for (guint d = 1; d <= depth; d++)
      if (g_atomic_int_get (&B.received[d]) != (gint) n)
        bench_die ("depth %u got %d of %u", d, g_atomic_int_get (&B.received[d]), n);
    {
      gdouble secs = (t1 - t0) / 1e6;

      printf ("| %" G_GSIZE_FORMAT " | %u | %.2f | %.0f | %.2f | %.2f | %.1f |\n", sizes[s],
          n, secs, n / secs, n * (gdouble) sizes[s] / secs / 1e6, (cpu1 - cpu0) / secs,
          (cpu1 - cpu0) * 1e6 / n / (depth + 1));
    }
    bench_run_for (300);
  }
  printf ("\n");
  for (guint d = 1; d <= depth; d++) {
    if (data_stat (nodes[d].element, "forged") || data_stat (nodes[d].element, "replayed")
        || data_stat (nodes[d].element, "lost"))
      bench_die ("viewer %u counted forged, replayed or lost messages", d);
    bench_check_bus (nodes[d].pipeline, "viewer");
  }

  /* 3. the signature alone */
  signature_costs ();

  printf ("Reproduce: `build/bench/data-chain ws://127.0.0.1:PORT %u %u` against a fresh "
      "`peertree-server --port 0`, with `GST_PLUGIN_PATH=build/gst`.\n\n", depth, messages);

  for (guint d = depth + 1; d > 0; d--) {
    gst_element_set_state (nodes[d - 1].pipeline, GST_STATE_NULL);
    gst_object_unref (nodes[d - 1].pipeline);
  }
  gst_object_unref (sink);
  return 0;
}
