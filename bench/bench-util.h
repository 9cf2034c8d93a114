/* Helpers shared by peertree's benchmark programs.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A bench program takes the server URL as its first argument, logs progress
 * on stderr and prints one Markdown section (a heading, a sentence on the
 * method and a table) on stdout; bench/run gathers the sections into
 * docs/benchmarks.md. Every loop is bounded and every address is 127.0.0.1.
 */
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>

#define BENCH_LOCAL "127.0.0.1"

static inline void
bench_die (const gchar *fmt, ...) G_GNUC_PRINTF (1, 2) G_GNUC_NORETURN;

static inline void
bench_die (const gchar *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  fprintf (stderr, "bench: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (1);
}

static inline void
bench_init (int *argc, char ***argv)
{
  gst_init (argc, argv);
  if (*argc < 2)
    bench_die ("usage: %s ws://127.0.0.1:PORT [options]", (*argv)[0]);
  if (gst_element_factory_find ("peertreesrc") == NULL)
    bench_die ("the peertree plugin is not found: set GST_PLUGIN_PATH to build/gst");
}

static inline gint
bench_cmp_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y;
}

/* Percentile @p (0..100) of @values (sorted in place), nearest rank. */
static inline gdouble
bench_percentile (GArray *values, gdouble p)
{
  guint rank;

  if (values->len == 0)
    return NAN;
  g_array_sort (values, bench_cmp_double);
  rank = (guint) ((p / 100.0) * values->len + 0.999999);
  rank = CLAMP (rank, 1, values->len);
  return g_array_index (values, gdouble, rank - 1);
}

/* Iterates the default main context for @ms (bus watches run there). */
static inline void
bench_run_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
}

/* Fails the benchmark if @pipeline posted an error. */
static inline void
bench_check_bus (GstElement *pipeline, const gchar *what)
{
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    gst_message_unref (msg);
    bench_die ("%s: %s (%s)", what, err->message, dbg);
  }
}

/* A peertreesrc pad-added: decodes @pad into a fakesink (capsfilter
 * video/x-raw, so peertreesrc builds its decoder), calling @on_frame with
 * @data for each decoded frame. */
static inline void
bench_decode_pad (GstElement *src, GstPad *pad, GstPadProbeCallback on_frame, gpointer data)
{
  GstElement *pipeline = GST_ELEMENT (gst_element_get_parent (src));
  GstElement *filter = gst_element_factory_make ("capsfilter", NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  g_autoptr (GstCaps) caps = gst_caps_from_string ("video/x-raw");
  g_autoptr (GstPad) fpad = gst_element_get_static_pad (filter, "sink");
  g_autoptr (GstPad) spad = gst_element_get_static_pad (sink, "sink");

  g_object_set (filter, "caps", caps, NULL);
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add_many (GST_BIN (pipeline), filter, sink, NULL);
  gst_element_link (filter, sink);
  gst_pad_add_probe (spad, GST_PAD_PROBE_TYPE_BUFFER, on_frame, data, NULL);
  gst_element_sync_state_with_parent (sink);
  gst_element_sync_state_with_parent (filter);
  gst_pad_link (pad, fpad);
  gst_object_unref (pipeline);
}
