/* bench/max-peers — the largest tree one machine holds with every peer
 * keeping the stream.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   max-peers ws://127.0.0.1:PORT [HOLD_SECONDS] [BUDGET_SECONDS]
 *
 * For k = 2 and k = 4, in a fresh process each (this program again, with
 * --run) and within BUDGET_SECONDS / 2 each: a live source (320x240@30,
 * SMPTE bars scrolling 2 px per frame under a running clock, vp8enc
 * target-bitrate=300000 deadline=1, then peertreesink k1=k k=k) and viewers,
 * one GstPipeline each, all in that process: `peertreesrc ! fakesink`, each
 * relaying to up to k children and counting the encoded frames it outputs.
 *
 * First the source alone (CPU, RSS), then the anchor: 4 viewers that decode
 * (`peertreesrc ! videoconvert ! fakesink`), CPU per viewer over 4 s.
 *
 * Ramp: viewers join in steps (16, then half the way to where the CPU per
 * viewer so far says this process would use 80% of every core, at most 4×
 * below 64 viewers, 2× above); after each step and 1 s of settling, a 3 s
 * window compares every viewer's frames with the source's, and if some
 * viewer has < 95% a second window decides: two short windows in a row fail
 * the step. After the first failing step, the gap between it and the last
 * passing one is halved (trimming the newest viewers, which are leaves)
 * down to 10% while time is left for the hold. A tree of HOLD_MARGIN × the
 * largest step that passed at its first window is then held for
 * HOLD_SECONDS: every viewer must keep ≥ 95% of the source's frames
 * (stopped early once some viewer cannot make it; then, if time is left, a
 * new tree 25% smaller). Process CPU (getrusage) and RSS (/proc/self/statm)
 * over the hold, minus those of the source alone, give the cost per peer.
 * Everything is bounded in count (MAX_VIEWERS) and time (alarm() as a
 * last resort).
 */
#include "bench-util.h"

#include <sys/resource.h>
#include <unistd.h>

#define MAX_VIEWERS 400
#define STEP_MIN 4
#define RAMP_START 16
#define N_DECODERS 4
#define THRESHOLD 0.95
#define EARLY_RATIO 0.90
#define HOLD_MARGIN 0.85
#define FPS 30
#define ENCODER "vp8enc target-bitrate=300000 deadline=1"
#define SOURCE_DESC "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! " \
  "video/x-raw,width=320,height=240,framerate=30/1 ! timeoverlay font-desc=\"Sans 18\" ! " \
  ENCODER " name=enc ! peertreesink server=%s tree-id=%s k1=%u k=%u " \
  "local-addresses=" BENCH_LOCAL

typedef struct {
  GstElement *pipeline;
  gint frames;                  /* atomic */
  gint depth;                   /* atomic, from peertree-tree-joined */
  gint error;                   /* atomic: posted an error */
  gint mark;                    /* frames at the start of a window */
} Viewer;

static struct {
  const gchar *url;
  guint k;
  gchar *tree;
  GstElement *source;
  Viewer source_v;              /* frames and error of the source */
  guint64 source_bytes;         /* atomic */
  gint keyframes;               /* atomic: at the source's encoder */
  Viewer v[MAX_VIEWERS];
  guint n;
  guint serial;
} M;

/* ---------------------------------------------------------------------- */

static GstBusSyncReply
on_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  Viewer *v = data;
  const GstStructure *st = gst_message_get_structure (msg);

  (void) bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    if (!g_atomic_int_get (&v->error))
      fprintf (stderr, "%s: %s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
    g_atomic_int_set (&v->error, 1);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && st &&
      gst_structure_has_name (st, "peertree-tree-joined")) {
    guint depth = 0;

    gst_structure_get_uint (st, "depth", &depth);
    g_atomic_int_set (&v->depth, (gint) depth);
  }
  /* nobody pops these buses: keep them empty (a sync handler that drops a
   * message owns it) */
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

static GstPadProbeReturn
on_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) info;
  g_atomic_int_inc (&((Viewer *) data)->frames);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_source_frame (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) data;
  g_atomic_int_inc (&M.source_v.frames);
  if (!GST_BUFFER_FLAG_IS_SET (GST_PAD_PROBE_INFO_BUFFER (info), GST_BUFFER_FLAG_DELTA_UNIT))
    g_atomic_int_inc (&M.keyframes);
  __atomic_add_fetch (&M.source_bytes, gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info)),
      __ATOMIC_SEQ_CST);
  return GST_PAD_PROBE_OK;
}

static void
watch (Viewer *v, GstElement *pipeline, const gchar *counted)
{
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), counted);
  g_autoptr (GstPad) pad = gst_element_get_static_pad (e, counted[0] == 'e' ? "src" : "sink");

  v->pipeline = pipeline;
  gst_bus_set_sync_handler (bus, on_message, v, NULL);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, counted[0] == 'e' ? on_source_frame :
      on_frame, v, NULL);
  gst_object_unref (e);
}

static void
viewer_start (Viewer *v, gboolean decode)
{
  g_autofree gchar *desc = g_strdup_printf ("peertreesrc server=%s tree-id=%s "
      "client-id=k%u-v%u local-addresses=" BENCH_LOCAL " ! %s fakesink name=out sync=false "
      "async=false", M.url, M.tree, M.k, M.serial++, decode ? "videoconvert !" : "");
  g_autoptr (GError) error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);

  if (p == NULL)
    bench_die ("viewer: %s", error->message);
  memset (v, 0, sizeof *v);
  watch (v, p, "out");
  gst_element_set_state (p, GST_STATE_PLAYING);
}

static void
viewer_stop (Viewer *v)
{
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (v->pipeline));

  gst_element_set_state (v->pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_clear_object (&v->pipeline);
}

/* the newest viewers first: they are the leaves */
static void
trim_to (guint n)
{
  while (M.n > n)
    viewer_stop (&M.v[--M.n]);
}

static gdouble
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
      ru.ru_stime.tv_usec / 1e6;
}

static gdouble
rss_mb (void)
{
  g_autofree gchar *text = NULL;
  unsigned long size = 0, resident = 0;

  if (g_file_get_contents ("/proc/self/statm", &text, NULL, NULL))
    sscanf (text, "%lu %lu", &size, &resident);
  return resident * (gdouble) sysconf (_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static guint
n_threads (void)
{
  g_autofree gchar *text = NULL;
  const gchar *p;

  if (g_file_get_contents ("/proc/self/status", &text, NULL, NULL) &&
      (p = strstr (text, "\nThreads:")))
    return (guint) atoi (p + 9);
  return 0;
}

/* busy and total jiffies of the whole machine, from /proc/stat */
static void
machine_jiffies (guint64 *busy, guint64 *total)
{
  g_autofree gchar *text = NULL;
  guint64 v[8] = { 0, };

  *busy = *total = 0;
  if (!g_file_get_contents ("/proc/stat", &text, NULL, NULL) ||
      sscanf (text, "cpu %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
          " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %"
          G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
          &v[6], &v[7]) != 8)
    return;
  for (guint i = 0; i < 8; i++)
    *total += v[i];
  *busy = *total - v[3] - v[4];  /* minus idle and iowait */
}

typedef struct {
  gdouble seconds;
  gdouble cpu;                  /* % of one core, this process */
  gdouble machine;              /* % of one core, the whole machine */
  gint source_frames;
  gint keyframes;
  gdouble source_kbps;
  gdouble worst;                /* lowest viewer frames / source frames */
  gboolean error;               /* some pipeline posted an error */
  gboolean aborted;             /* stopped early: some viewer could no longer make it */
} Window;

/* Every viewer's frames against the source's over @ms (a source below its
 * nominal rate counts as a shortfall too). With @abort, stops early once a
 * viewer is so far behind that it cannot end ≥ THRESHOLD. */
static void
measure (guint ms, gboolean abort, Window *w)
{
  gint s0 = g_atomic_int_get (&M.source_v.frames), k0 = g_atomic_int_get (&M.keyframes);
  guint64 b0 = __atomic_load_n (&M.source_bytes, __ATOMIC_SEQ_CST), mb0, mt0, mb1, mt1;
  gint64 t0 = g_get_monotonic_time (), end = t0 + (gint64) ms * 1000;
  gdouble c0 = cpu_seconds ();

  machine_jiffies (&mb0, &mt0);
  for (guint i = 0; i < M.n; i++)
    M.v[i].mark = g_atomic_int_get (&M.v[i].frames);
  w->aborted = FALSE;
  while (g_get_monotonic_time () < end && !w->aborted) {
    bench_run_for (MIN (1000, (guint) ((end - g_get_monotonic_time ()) / 1000) + 1));
    if (abort) {
      gint s = g_atomic_int_get (&M.source_v.frames) - s0;
      gdouble left = (end - g_get_monotonic_time ()) / 1e6;
      gdouble allowed = (1 - THRESHOLD) * (s + MAX (0, left) * FPS) + 2;

      /* cannot end ≥ THRESHOLD any more, or after 10 s clearly on the way
       * down (< EARLY_RATIO so far) */
      for (guint i = 0; i < M.n; i++) {
        gint got = g_atomic_int_get (&M.v[i].frames) - M.v[i].mark;

        if (g_atomic_int_get (&M.v[i].error) || s - got > allowed ||
            (g_get_monotonic_time () - t0 > 10 * G_USEC_PER_SEC && got < EARLY_RATIO * s))
          w->aborted = TRUE;
      }
    }
  }
  machine_jiffies (&mb1, &mt1);
  w->seconds = (g_get_monotonic_time () - t0) / 1e6;
  w->cpu = 100.0 * (cpu_seconds () - c0) / w->seconds;
  w->machine = mt1 > mt0 ? 100.0 * sysconf (_SC_NPROCESSORS_ONLN) * (mb1 - mb0) / (mt1 - mt0) :
      NAN;
  w->source_frames = g_atomic_int_get (&M.source_v.frames) - s0;
  w->keyframes = g_atomic_int_get (&M.keyframes) - k0;
  w->source_kbps = (__atomic_load_n (&M.source_bytes, __ATOMIC_SEQ_CST) - b0) * 8.0 / 1000.0 /
      w->seconds;
  w->worst = MIN (1.0, w->source_frames / (FPS * w->seconds));
  w->error = g_atomic_int_get (&M.source_v.error);
  for (guint i = 0; i < M.n; i++) {
    gdouble r = w->source_frames > 0 ?
        (g_atomic_int_get (&M.v[i].frames) - M.v[i].mark) / (gdouble) w->source_frames : 0;

    if (g_atomic_int_get (&M.v[i].error)) {
      w->error = TRUE;
      r = 0;
    }
    w->worst = MIN (w->worst, r);
  }
}

static guint
max_depth (void)
{
  guint d = 0;

  for (guint i = 0; i < M.n; i++)
    d = MAX (d, (guint) g_atomic_int_get (&M.v[i].depth));
  return d;
}

/* Grows or trims the tree to @n viewers (trimming the newest, which are
 * leaves; restarting any that failed); FALSE if a new one has no frame
 * within 10 s */
static gboolean
resize (guint n, gboolean decode)
{
  guint first = M.n;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  trim_to (n);
  for (guint i = 0; i < M.n; i++)
    if (g_atomic_int_get (&M.v[i].error)) {
      viewer_stop (&M.v[i]);
      viewer_start (&M.v[i], decode);
      first = MIN (first, i);
    }
  while (M.n < n)
    viewer_start (&M.v[M.n++], decode);
  for (guint i = first; i < M.n; i++)
    while (g_atomic_int_get (&M.v[i].frames) == 0 && !g_atomic_int_get (&M.v[i].error) &&
        g_get_monotonic_time () < deadline)
      bench_run_for (10);
  for (guint i = first; i < M.n; i++)
    if (g_atomic_int_get (&M.v[i].frames) == 0) {
      fprintf (stderr, "k=%u: viewer %u of %u has no frame after 10 s\n", M.k, i + 1, n);
      return FALSE;
    }
  return TRUE;
}

/* One step of the ramp: @n viewers, 1 s to settle, a 3 s window and, if
 * that falls short, a second one; passes unless both fall short; @clean:
 * the first window passed. */
static gboolean
probe (guint n, Window *w, gboolean *clean)
{
  gboolean ok = resize (n, FALSE);

  memset (w, 0, sizeof *w);
  *clean = FALSE;
  if (ok) {
    bench_run_for (1000);
    measure (3000, FALSE, w);
    ok = *clean = w->worst >= THRESHOLD;
    fprintf (stderr, "k=%u: %3u viewers (depth %u): worst %5.1f%% of the source's %d frames "
        "(%d keyframes), CPU %.0f%% (machine %.0f%%), %.0f MB, %u threads\n", M.k, n,
        max_depth (), 100 * w->worst, w->source_frames, w->keyframes, w->cpu, w->machine,
        rss_mb (), n_threads ());
    if (!ok && !w->error) {
      measure (3000, FALSE, w);
      ok = w->worst >= THRESHOLD;
      fprintf (stderr, "k=%u: %3u viewers, again: worst %5.1f%%, CPU %.0f%% (machine %.0f%%)\n",
          M.k, n, 100 * w->worst, w->cpu, w->machine);
    }
  }
  return ok;
}

#define OUT(key, fmt, ...) printf (key " " fmt "\n", __VA_ARGS__)

/* --run: one k, in a process of its own, within about @budget_s seconds;
 * prints "key value" lines */
static int
run_main (const gchar *url, guint k, guint confirm_s, guint budget_s, gboolean with_anchor)
{
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  Window base, dec = { 0, }, w, conf = { 0, }, fail = { 0, };
  gdouble base_rss, dec_cpu = NAN;
  guint base_threads, good = 0, bad = 0, clean_good = 0, steps = 0, fail_depth = 0;
  guint n = RAMP_START, ramp_good, grow_n = 0;
  gdouble grow_rss = 0;
  gboolean confirmed = FALSE;
  gint64 start = g_get_monotonic_time (), end, ramp_end;

  M.url = url;
  M.k = k;
  M.tree = g_strdup_printf ("bench-max-peers-k%u", k);
  end = start + (gint64) budget_s * G_USEC_PER_SEC;
  /* the rest is for the hold (a second one only if time is left), 3 s of
   * settling and the teardown */
  ramp_end = end - (gint64) (confirm_s + 12) * G_USEC_PER_SEC;
  /* a safety net: everything below is bounded */
  alarm (budget_s + confirm_s + 120);

  desc = g_strdup_printf (SOURCE_DESC, url, M.tree, k, k);
  M.source = gst_parse_launch (desc, &error);
  if (M.source == NULL)
    bench_die ("source: %s", error->message);
  watch (&M.source_v, M.source, "enc");
  gst_element_set_state (M.source, GST_STATE_PLAYING);
  bench_run_for (1000);
  measure (2000, FALSE, &base);
  base_rss = rss_mb ();
  base_threads = n_threads ();
  if (base.error || base.source_frames == 0)
    bench_die ("k=%u: the source does not run", k);
  fprintf (stderr, "k=%u: source alone %.1f%% of a core, %.1f MB, %.0f kbit/s\n", k, base.cpu,
      base_rss, base.source_kbps);

  /* anchor: viewers that decode (with the first k only: it hardly depends
   * on k, and time is short) */
  if (with_anchor && resize (N_DECODERS, TRUE)) {
    bench_run_for (1000);
    measure (4000, FALSE, &dec);
    dec_cpu = (dec.cpu - base.cpu) / N_DECODERS;
    fprintf (stderr, "k=%u: %u decoding viewers %.1f%% → %.2f%% each (worst %.0f%% of the "
        "frames)\n", k, N_DECODERS, dec.cpu, dec_cpu, 100 * dec.worst);
  }
  trim_to (0);
  bench_run_for (500);

  /* ramp: up while steps pass, then halve the gap between the last step
   * that passed and the first that failed, down to STEP_MIN or 10% */
  /* a step takes about 5 to 8 s */
  while (g_get_monotonic_time () + 7 * G_USEC_PER_SEC < ramp_end) {
    gboolean clean, ok = probe (n, &w, &clean);

    steps++;
    if (bad == 0) {
      /* memory is not given back when viewers leave: per peer, take the
       * resident set while the tree only grew */
      grow_rss = rss_mb ();
      grow_n = n;
    }
    if (clean)
      clean_good = MAX (clean_good, n);
    if (ok) {
      good = n;
    } else {
      bad = n;
      fail = w;
      fail_depth = max_depth ();
    }
    if (bad == 0) {
      /* half the way to where the CPU per viewer so far says this process
       * would use 80% of every core: at least STEP_MIN, at most 4× (below
       * 64 viewers) or 2× */
      gdouble per = MAX (0.1, (w.cpu - base.cpu) / n);
      gdouble room = (sysconf (_SC_NPROCESSORS_ONLN) * 80.0 - w.cpu) / per;
      guint step = (guint) CLAMP (room / 2, STEP_MIN, n < 64 ? 3 * n : n);

      if (n >= MAX_VIEWERS)
        break;
      n = MIN (MAX_VIEWERS, n + step);
    } else {
      if (bad - good <= MAX (STEP_MIN, good / 10))
        break;
      n = (good + bad) / 2;
    }
  }
  fprintf (stderr, "k=%u: ramp done after %.0f s, %u steps: %u viewers passed (%u at the first "
      "window), %u failed\n", k, (g_get_monotonic_time () - start) / 1e6, steps, good,
      clean_good, bad);

  /* hold the largest step that passed at its first window (a step that
   * needed a second window is on the edge); lower if a viewer falls behind
   * for good and there is time left */
  ramp_good = good;
  if (clean_good > 0)
    good = clean_good;
  /* a margin: a step that passed 3 s may still fall behind in a minute */
  good = good > STEP_MIN ? MAX (STEP_MIN, (guint) (good * HOLD_MARGIN + 0.5)) : good;
  for (guint attempt = 0; good > 0; attempt++) {
    if (attempt > 0) {
      /* a tree that fell behind tends to stay there (lost packets, keyframe
       * requests, bigger bursts, more lost packets): hold a new one */
      trim_to (0);
      bench_run_for (1000);
    }
    resize (good, FALSE);
    /* let the keyframes requested by joining viewers or after a failing
     * step pass */
    bench_run_for (attempt > 0 ? 5000 : 3000);
    fprintf (stderr, "k=%u: holding %u viewers for %u s\n", k, good, confirm_s);
    measure (confirm_s * 1000, TRUE, &conf);
    fprintf (stderr, "k=%u: %u viewers (depth %u) over %.0f s%s: worst %.1f%% of the source's "
        "%d frames, CPU %.0f%% (machine %.0f%%), %.0f MB, %d keyframes\n", k, good, max_depth (),
        conf.seconds, conf.aborted ? " (stopped early)" : "", 100 * conf.worst,
        conf.source_frames, conf.cpu, conf.machine, rss_mb (), conf.keyframes);
    if (!conf.aborted && conf.worst >= THRESHOLD) {
      confirmed = TRUE;
      break;
    }
    if (bad == 0 || good < bad) {
      bad = good;
      fail = conf;
      fail_depth = max_depth ();
    }
    if (g_get_monotonic_time () + (gint64) (confirm_s + 12) * G_USEC_PER_SEC > end)
      break;
    good = good > STEP_MIN ? good - MAX (STEP_MIN, good / 4) : 0;
  }

  OUT ("k", "%u", k);
  OUT ("n", "%u", good);
  OUT ("confirmed", "%d", confirmed);
  OUT ("depth", "%u", max_depth ());
  OUT ("seconds", "%.1f", conf.seconds);
  OUT ("worst", "%.4f", conf.worst);
  OUT ("source_frames", "%d", conf.source_frames);
  OUT ("keyframes", "%d", conf.keyframes);
  OUT ("kbps", "%.1f", conf.source_kbps);
  OUT ("cpu", "%.2f", conf.cpu);
  OUT ("machine", "%.2f", conf.machine);
  OUT ("base_cpu", "%.2f", base.cpu);
  OUT ("base_kbps", "%.1f", base.source_kbps);
  OUT ("rss", "%.2f", rss_mb ());
  OUT ("base_rss", "%.2f", base_rss);
  OUT ("grow_rss", "%.2f", grow_rss);
  OUT ("grow_n", "%u", grow_n);
  OUT ("threads", "%u", n_threads () - base_threads);
  OUT ("dec_cpu", "%.3f", dec_cpu);
  OUT ("dec_worst", "%.4f", dec.worst);
  OUT ("fail_n", "%u", bad);
  OUT ("fail_worst", "%.4f", fail.worst);
  OUT ("fail_cpu", "%.2f", fail.cpu);
  OUT ("fail_machine", "%.2f", fail.machine);
  OUT ("fail_depth", "%u", fail_depth);
  OUT ("steps", "%u", steps);
  OUT ("ramp_good", "%u", ramp_good);
  fflush (stdout);

  trim_to (0);
  gst_element_set_state (M.source, GST_STATE_NULL);
  gst_object_unref (M.source);
  fprintf (stderr, "k=%u: done after %.0f s\n", k, (g_get_monotonic_time () - start) / 1e6);
  return 0;
}

/* ---------------------------------------------------------------------- */

static GHashTable *
run_k (const gchar *url, guint k, guint confirm_s, guint budget_s, gboolean with_anchor)
{
  g_autofree gchar *ks = g_strdup_printf ("%u", k);
  g_autofree gchar *cs = g_strdup_printf ("%u", confirm_s);
  g_autofree gchar *bs = g_strdup_printf ("%u", budget_s);
  gchar *args[] = { (gchar *) "/proc/self/exe", (gchar *) "--run", (gchar *) url, ks, cs, bs,
    (gchar *) (with_anchor ? "anchor" : "-"), NULL
  };
  g_autofree gchar *out = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) lines = NULL;
  gint status = 0;
  GHashTable *res = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  if (!g_spawn_sync (NULL, args, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status,
          &error))
    bench_die ("cannot run k=%u: %s", k, error->message);
  if (!g_spawn_check_wait_status (status, &error)) {
    /* complete results count even if the process then failed to exit
     * cleanly (stderr says so) */
    if (out == NULL || strstr (out, "\nsteps ") == NULL)
      bench_die ("k=%u: %s", k, error->message);
    fprintf (stderr, "k=%u: the process printed its results, then: %s\n", k, error->message);
  }
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    gchar *sp = strchr (lines[i], ' ');

    if (sp)
      g_hash_table_insert (res, g_strndup (lines[i], sp - lines[i]), g_strdup (sp + 1));
  }
  if (!g_hash_table_contains (res, "n"))
    bench_die ("k=%u: no result", k);
  return res;
}

static gdouble
num (GHashTable *r, const gchar *key)
{
  const gchar *v = g_hash_table_lookup (r, key);

  return v ? g_ascii_strtod (v, NULL) : NAN;
}

int
main (int argc, char **argv)
{
  const gchar *url;
  guint confirm_s, budget_s;
  const guint ks[] = { 2, 4 };
  GHashTable *res[G_N_ELEMENTS (ks)];
  gdouble dec;
  int ret = 0;

  if (argc >= 7 && g_str_equal (argv[1], "--run")) {
    gst_init (&argc, &argv);
    return run_main (argv[2], (guint) atoi (argv[3]), (guint) atoi (argv[4]),
        (guint) atoi (argv[5]), g_str_equal (argv[6], "anchor"));
  }
  bench_init (&argc, &argv);
  url = argv[1];
  confirm_s = argc > 2 ? (guint) atoi (argv[2]) : 60;
  confirm_s = CLAMP (confirm_s, 5, 600);
  budget_s = argc > 3 ? (guint) atoi (argv[3]) : 230;
  budget_s = CLAMP (budget_s, 2 * (confirm_s + 30), 3600);

  for (guint i = 0; i < G_N_ELEMENTS (ks); i++)
    res[i] = run_k (url, ks[i], confirm_s, budget_s / G_N_ELEMENTS (ks), i == 0);

  dec = num (res[0], "dec_cpu");
  printf ("## Peers on one machine\n\n");
  printf ("The largest tree in which every viewer keeps ≥ %.0f%% of the source's frames for "
      "%u s, all of it in one process (one per k): a live 320x240@30 VP8 source (SMPTE bars "
      "scrolling 2 px per frame under a running clock; `" ENCODER "`) with k1 = k, and "
      "viewers `peertreesrc ! fakesink`, one GstPipeline each, each relaying to up to k "
      "children and counting the encoded frames it outputs. Viewers join in steps (16, then "
      "half the way to where the CPU per viewer measured so far would fill 80%% of the "
      "cores); a step fails when, after 1 s, some viewer gets < %.0f%% of the source's "
      "frames in two 3 s windows in a row; after the first failing step the gap is halved "
      "(down to 10%%) while time allows, %u s per k in all. A tree of 85%% of the largest "
      "step that passed at its first window is then held for %u s, stopped early once a "
      "viewer cannot make it or has < %.0f%% after 10 s; then, if time is left, a new tree "
      "25%% smaller is held (a tree that fell behind tends to stay behind). The limit lies "
      "between the viewers held and the first step that failed. Per peer = (process − "
      "source alone) / viewers; "
      "CPU from getrusage in %% of one core over the hold; memory per peer from the "
      "resident set at the last step before the tree was first trimmed (freed memory is "
      "not given back). "
      "Anchor, same run (the k=2 process, before its ramp): %u viewers that decode "
      "(`peertreesrc ! videoconvert ! fakesink`), CPU per viewer over 4 s.\n\n",
      100 * THRESHOLD, confirm_s, 100 * THRESHOLD, budget_s / (guint) G_N_ELEMENTS (ks),
      confirm_s, 100 * EARLY_RATIO, N_DECODERS);
  printf ("| k | viewers held %u s | depth | worst viewer (%% of the source's frames) | "
      "source kbit/s (keyframes) | process CPU (%% core) | CPU per peer (%% core) | anchor: "
      "decoding viewer (%% core) | process RSS (MB) | RSS per peer (MB) | threads per peer | "
      "steps passed: largest; failed: first |\n", confirm_s);
  printf ("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (guint i = 0; i < G_N_ELEMENTS (ks); i++) {
    GHashTable *r = res[i];
    gdouble n = num (r, "n");
    gdouble fwd = (num (r, "cpu") - num (r, "base_cpu")) / n;
    g_autofree gchar *fail = num (r, "fail_n") > 0 ?
        g_strdup_printf ("%.0f; failed: %.0f (depth %.0f, worst %.1f%%, CPU %.0f%%, machine "
        "%.0f%%)", num (r, "ramp_good"), num (r, "fail_n"), num (r, "fail_depth"),
        100 * num (r, "fail_worst"), num (r, "fail_cpu"), num (r, "fail_machine")) :
        g_strdup_printf ("%.0f; none failed (out of time)", num (r, "ramp_good"));

    printf ("| %u | %s%.0f%s | %.0f | %.1f | %.0f (%.0f) | %.0f | %.2f | %.2f (%.1f×) | %.0f | "
        "%.2f | %.1f | %s |\n", ks[i], num (r, "fail_n") > 0 ? "" : "≥ ", n,
        num (r, "confirmed") > 0 ? "" : " (**not held**)", num (r, "depth"),
        100 * num (r, "worst"), num (r, "kbps"), num (r, "keyframes"), num (r, "cpu"), fwd,
        dec, dec / fwd, num (r, "rss"), (num (r, "grow_rss") - num (r, "base_rss")) /
        num (r, "grow_n"),
        num (r, "threads") / n, fail);
  }
  printf ("\nA viewer that decodes costs %.1f× (k=2) and %.1f× (k=4) the CPU of a peer that "
      "forwards. The source alone sends %.0f kbit/s with a keyframe every 128 frames "
      "(vp8enc's default: %u in %u s); further keyframes in the table were requested by "
      "viewers that lost packets. *machine* is the CPU of every process on the machine "
      "(100%% = one core): near all cores, the limit is the CPU as shared with whatever else "
      "runs. Reproduce: `bench/run max-peers` (it runs `build/bench/max-peers "
      "ws://127.0.0.1:PORT %u %u` against a fresh `peertree-server --port 0`).\n\n",
      dec / ((num (res[0], "cpu") - num (res[0], "base_cpu")) / num (res[0], "n")),
      dec / ((num (res[1], "cpu") - num (res[1], "base_cpu")) / num (res[1], "n")),
      num (res[0], "base_kbps"), confirm_s * FPS / 128, confirm_s, confirm_s, budget_s);
  /* "not held" is a result (in bold in the table), not a failure */
  for (guint i = 0; i < G_N_ELEMENTS (ks); i++) {
    ret |= !(num (res[i], "n") > 0);
    g_hash_table_unref (res[i]);
  }
  return ret;
}
