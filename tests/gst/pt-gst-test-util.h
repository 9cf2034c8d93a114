/* Helpers for the peertreesink / peertreesrc tests: pipelines whose bus
 * messages are collected from any thread, frame counters on sink pads, and
 * waits that keep the in-process server's main context running.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <string.h>

#include <gst/check/gstcheck.h>
#include "../pt-test-util.h"
#include "pt-gst-process.h"
#include "pt-gst-known-issues.h"

/* Every test talks over loopback only. */
#define PT_LOCAL "127.0.0.1"

/* Generous bounds: they only turn a hang into a failure; the tests assert
 * behaviour, never speed (timings belong in bench/). */
#define PT_WAIT_MS 30000

typedef struct {
  gchar *name;
  GstElement *pipeline;
  GMutex lock;
  GPtrArray *messages;          /* GstStructure copies of peertree-* element messages */
  GError *error;                /* first GST_MESSAGE_ERROR */
  gchar *error_debug;
  gboolean eos;
  gint64 started_us;            /* when set to PLAYING */

  /* counters of the sink branches (atomic / under lock) */
  gint video_frames;
  gint audio_buffers;
  gint64 first_video_us;
  gint video_width, video_height;
  gchar *video_caps_name;
  gchar *audio_caps_name;
} PtNode;

static GstBusSyncReply
pt_node_bus_sync (GstBus *bus, GstMessage *msg, gpointer data)
{
  PtNode *node = data;

  (void) bus;
  g_mutex_lock (&node->lock);
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:
      if (node->error == NULL)
        gst_message_parse_error (msg, &node->error, &node->error_debug);
      GST_INFO ("%s: error %s (%s)", node->name, node->error->message, node->error_debug);
      break;
    case GST_MESSAGE_WARNING: {
      g_autoptr (GError) err = NULL;
      g_autofree gchar *dbg = NULL;

      gst_message_parse_warning (msg, &err, &dbg);
      GST_INFO ("%s: warning %s (%s)", node->name, err->message, dbg);
      break;
    }
    case GST_MESSAGE_EOS:
      node->eos = TRUE;
      break;
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);

      if (s && g_str_has_prefix (gst_structure_get_name (s), "peertree-")) {
        GST_INFO ("%s: %" GST_PTR_FORMAT, node->name, s);
        g_ptr_array_add (node->messages, gst_structure_copy (s));
      }
      break;
    }
    default:
      break;
  }
  g_mutex_unlock (&node->lock);
  /* a sync handler that drops a message owns it */
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

static inline PtNode *
pt_node_new (const gchar *name, GstElement *pipeline)
{
  PtNode *node = g_new0 (PtNode, 1);
  g_autoptr (GstBus) bus = NULL;

  node->name = g_strdup (name);
  node->pipeline = pipeline;
  g_mutex_init (&node->lock);
  node->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_structure_free);
  bus = gst_pipeline_get_bus (GST_PIPELINE (pipeline));
  gst_bus_set_sync_handler (bus, pt_node_bus_sync, node, NULL);
  return node;
}

static inline PtNode *
pt_node_new_launch (const gchar *name, const gchar *description)
{
  g_autoptr (GError) error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);

  fail_unless (pipeline != NULL, "%s: %s", description, error ? error->message : "");
  fail_unless (error == NULL, "%s: %s", description, error->message);
  if (!GST_IS_PIPELINE (pipeline)) {
    GstElement *bin = gst_pipeline_new (NULL);

    gst_bin_add (GST_BIN (bin), pipeline);
    pipeline = bin;
  }
  return pt_node_new (name, pipeline);
}

static inline void
pt_node_play (PtNode *node)
{
  node->started_us = g_get_monotonic_time ();
  fail_if (gst_element_set_state (node->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE, "%s: PLAYING failed", node->name);
}

static inline gboolean
pt_weak_ref_is_gone (GWeakRef *weak)
{
  GObject *obj = g_weak_ref_get (weak);

  if (obj == NULL)
    return TRUE;
  g_object_unref (obj);
  return FALSE;
}

static inline gboolean
pt_weak_refs_are_gone (GArray *weak)
{
  for (guint i = 0; i < weak->len; i++)
    if (!pt_weak_ref_is_gone (&g_array_index (weak, GWeakRef, i)))
      return FALSE;
  return TRUE;
}

/* Stops and frees the pipeline, and checks that nothing (no thread or
 * callback of our elements, no reference they keep) keeps it or any of our
 * elements alive: a bin drops its children whatever their reference count,
 * so each peertree element is checked too. */
static inline void
pt_node_free (PtNode *node)
{
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GstIterator) it = NULL;
  g_autoptr (GArray) weak = g_array_new (FALSE, TRUE, sizeof (GWeakRef));
  GValue item = G_VALUE_INIT;

  if (node == NULL)
    return;
  fail_unless_equals_int (gst_element_set_state (node->pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  bus = gst_pipeline_get_bus (GST_PIPELINE (node->pipeline));
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  g_array_set_size (weak, 1);
  g_weak_ref_init (&g_array_index (weak, GWeakRef, 0), node->pipeline);
  it = gst_bin_iterate_recurse (GST_BIN (node->pipeline));
  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElementFactory *f = gst_element_get_factory (g_value_get_object (&item));

    if (f && g_str_has_prefix (GST_OBJECT_NAME (f), "peertree")) {
      g_array_set_size (weak, weak->len + 1);
      g_weak_ref_init (&g_array_index (weak, GWeakRef, weak->len - 1),
          g_value_get_object (&item));
    }
    g_value_reset (&item);
  }
  g_value_unset (&item);
  g_clear_pointer (&it, gst_iterator_free);     /* it holds the pipeline */
  fail_unless (weak->len > 1, "%s: no peertree element found", node->name);
  gst_object_unref (node->pipeline);
  WAIT_UNTIL_MS (pt_weak_refs_are_gone (weak), PT_WAIT_MS);
  for (guint i = 0; i < weak->len; i++)
    g_weak_ref_clear (&g_array_index (weak, GWeakRef, i));
  g_ptr_array_unref (node->messages);
  g_clear_error (&node->error);
  g_free (node->error_debug);
  g_free (node->video_caps_name);
  g_free (node->audio_caps_name);
  g_mutex_clear (&node->lock);
  g_free (node->name);
  g_free (node);
}

/* Copy of the @index-th message named @name, or NULL. */
static inline GstStructure *
pt_node_get_message (PtNode *node, const gchar *name, guint index)
{
  GstStructure *ret = NULL;

  g_mutex_lock (&node->lock);
  for (guint i = 0; i < node->messages->len && ret == NULL; i++) {
    GstStructure *s = g_ptr_array_index (node->messages, i);

    if (gst_structure_has_name (s, name) && index-- == 0)
      ret = gst_structure_copy (s);
  }
  g_mutex_unlock (&node->lock);
  return ret;
}

static inline guint
pt_node_count_messages (PtNode *node, const gchar *name)
{
  guint n = 0;

  g_mutex_lock (&node->lock);
  for (guint i = 0; i < node->messages->len; i++)
    if (gst_structure_has_name (g_ptr_array_index (node->messages, i), name))
      n++;
  g_mutex_unlock (&node->lock);
  return n;
}

static inline gboolean
pt_node_has_error (PtNode *node)
{
  gboolean ret;

  g_mutex_lock (&node->lock);
  ret = node->error != NULL;
  g_mutex_unlock (&node->lock);
  return ret;
}

static inline gboolean
pt_node_got_eos (PtNode *node)
{
  gboolean ret;

  g_mutex_lock (&node->lock);
  ret = node->eos;
  g_mutex_unlock (&node->lock);
  return ret;
}

/* Fails the test if the pipeline posted an error. */
static inline void
pt_node_assert_no_error (PtNode *node)
{
  g_mutex_lock (&node->lock);
  fail_unless (node->error == NULL, "%s: error: %s (%s)", node->name,
      node->error ? node->error->message : "", node->error_debug);
  g_mutex_unlock (&node->lock);
}

/* ---- counting sinks ---- */

static GstPadProbeReturn
pt_count_video (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  PtNode *node = data;

  (void) info;
  if (g_atomic_int_add (&node->video_frames, 1) == 0) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
    const GstStructure *s = caps ? gst_caps_get_structure (caps, 0) : NULL;

    g_mutex_lock (&node->lock);
    node->first_video_us = g_get_monotonic_time ();
    if (s) {
      node->video_caps_name = g_strdup (gst_structure_get_name (s));
      gst_structure_get_int (s, "width", &node->video_width);
      gst_structure_get_int (s, "height", &node->video_height);
    }
    g_mutex_unlock (&node->lock);
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
pt_count_audio (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  PtNode *node = data;

  (void) info;
  if (g_atomic_int_add (&node->audio_buffers, 1) == 0) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);

    g_mutex_lock (&node->lock);
    if (caps)
      node->audio_caps_name = g_strdup (gst_structure_get_name (gst_caps_get_structure (caps,
                  0)));
    g_mutex_unlock (&node->lock);
  }
  return GST_PAD_PROBE_OK;
}

typedef struct {
  PtNode *node;
  gboolean decode;              /* link raw caps (decoded) or ANY (encoded) */
} PtViewerCtx;

/* peertreesrc pad-added: [capsfilter raw] ! fakesink with a counting probe */
static void
pt_viewer_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  PtViewerCtx *ctx = data;
  gboolean video = g_str_has_prefix (GST_PAD_NAME (pad), "video_");
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstElement *first = sink;
  g_autoptr (GstPad) sinkpad = gst_element_get_static_pad (sink, "sink");
  g_autoptr (GstPad) firstpad = NULL;

  (void) src;
  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (ctx->node->pipeline), sink);
  if (ctx->decode) {
    g_autoptr (GstCaps) caps = gst_caps_from_string (video ? "video/x-raw" : "audio/x-raw");

    first = gst_element_factory_make ("capsfilter", NULL);
    g_object_set (first, "caps", caps, NULL);
    gst_bin_add (GST_BIN (ctx->node->pipeline), first);
    fail_unless (gst_element_link (first, sink));
  }
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER, video ? pt_count_video :
      pt_count_audio, ctx->node, NULL);
  gst_element_sync_state_with_parent (sink);
  gst_element_sync_state_with_parent (first);
  firstpad = gst_element_get_static_pad (first, "sink");
  fail_unless_equals_int (gst_pad_link (pad, firstpad), GST_PAD_LINK_OK);
}

/* A viewer pipeline: peertreesrc with its pads linked to counting sinks. */
static inline PtNode *
pt_viewer_new (const gchar *name, const gchar *server, const gchar *tree_id, gboolean decode)
{
  GstElement *pipeline = gst_pipeline_new (name);
  GstElement *src = gst_element_factory_make ("peertreesrc", "src");
  PtNode *node = pt_node_new (name, pipeline);
  PtViewerCtx *ctx = g_new0 (PtViewerCtx, 1);

  fail_unless (src != NULL, "peertreesrc not found (GST_PLUGIN_PATH?)");
  g_object_set (src, "server", server, "tree-id", tree_id, "client-id", name,
      "local-addresses", PT_LOCAL, NULL);
  gst_bin_add (GST_BIN (pipeline), src);
  ctx->node = node;
  ctx->decode = decode;
  g_signal_connect_data (src, "pad-added", G_CALLBACK (pt_viewer_pad_added), ctx,
      (GClosureNotify) (void (*)(void)) g_free, 0);
  return node;
}

/* Number of elements whose factory is of klass @klass (e.g. "Decoder"),
 * searched recursively. */
static inline guint
pt_count_elements_of_klass (GstElement *bin, const gchar *klass)
{
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (GST_BIN (bin));
  GValue item = G_VALUE_INIT;
  guint n = 0;

  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);
    const gchar *k = f ? gst_element_factory_get_metadata (f, GST_ELEMENT_METADATA_KLASS) : NULL;

    if (k && strstr (k, klass))
      n++;
    g_value_reset (&item);
  }
  g_value_unset (&item);
  return n;
}

/* Waits (running the default main context, where the in-process server
 * lives) for @node to post an error; returns it (transfer full). */
static inline GError *
pt_node_wait_error (PtNode *node)
{
  GError *err;

  WAIT_UNTIL_MS (pt_node_has_error (node), PT_WAIT_MS);
  g_mutex_lock (&node->lock);
  err = g_error_copy (node->error);
  g_mutex_unlock (&node->lock);
  return err;
}
