/* peertree-demo — a live source and N viewers in one process, every
 * pipeline talking WebRTC over 127.0.0.1 through a peertree-server.
 *
 *   peertree-demo ws://127.0.0.1:PORT [N_VIEWERS] [K] [K1]
 *
 * source:  videotestsrc + audiotestsrc ! peertreesink (VP8 + Opus, encoded once)
 * viewers: peertreesrc ! decode ! autovideosink (the first one, when a display
 *          exists) or ! fakesink (headless); every viewer also relays to its
 *          children without decoding.
 *
 * Prints the tree as the viewers were told it (tree-joined / upstream-changed
 * element messages) and each viewer's decoded video frame and audio buffer
 * counts (pad probes on its sinks). Stops on Ctrl-C, or by itself after
 * PEERTREE_DEMO_SECONDS (default: 20 when stdin is not a terminal, else
 * never). Exits 1 if a viewer decoded no frame. PEERTREE_DEMO_VIDEOSINK names
 * the windowed viewer's sink (default autovideosink; scripts/check-elements
 * uses ximagesink on Xvfb, see there).
 *
 * Needs the peertree plugin on GST_PLUGIN_PATH (scripts/demo sets it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <gst/gst.h>

#include "common/pt-element-packages.h"

typedef struct {
  gchar *name;
  GstElement *pipeline;
  gboolean windowed;
  gint video_frames;            /* atomic */
  gint audio_buffers;           /* atomic */
  gint width, height;           /* of the first decoded frame */
  gchar *parent;                /* as told by the element messages */
  guint depth;
  guint children;
  gboolean joined;
  gchar *error;
} Node;

static struct {
  GMainLoop *loop;
  Node *source;
  GPtrArray *viewers;
  gint64 t0;
  gint exit_code;
} D;

static Node *
node_new (const gchar *name, GstElement *pipeline)
{
  Node *n = g_new0 (Node, 1);

  n->name = g_strdup (name);
  n->pipeline = pipeline;
  return n;
}

static void
node_free (Node *n)
{
  gst_element_set_state (n->pipeline, GST_STATE_NULL);
  gst_object_unref (n->pipeline);
  g_free (n->name);
  g_free (n->parent);
  g_free (n->error);
  g_free (n);
}

/* ---- missing elements ---- */

/* "the GStreamer element 'X' is missing: install the Debian package P" for
 * every element @ctx saw missing, else @error's own message. */
static gchar *
describe_parse_error (GstParseContext *ctx, const GError *error)
{
  g_auto (GStrv) missing = ctx ? gst_parse_context_get_missing_elements (ctx) : NULL;
  GString *s;

  if (missing == NULL || missing[0] == NULL)
    return g_strdup (error->message);
  s = g_string_new (NULL);
  for (guint i = 0; missing[i]; i++) {
    const gchar *pkg = pt_element_package (missing[i]);

    g_string_append_printf (s, "%sthe GStreamer element '%s' is missing: ", i ? "; " : "",
        missing[i]);
    if (pkg)
      g_string_append_printf (s, "install the Debian package %s (scripts/deps installs it)", pkg);
    else
      g_string_append (s, "install the plugin that provides it");
  }
  return g_string_free (s, FALSE);
}

/* gst_parse_launch() that fails on any missing element, naming it and its
 * package, instead of building a pipeline with a hole in it (which fails
 * later with "Internal data stream error"). */
static GstElement *
parse_launch (const gchar *desc, gboolean bin, gchar **message)
{
  g_autoptr (GstParseContext) ctx = gst_parse_context_new ();
  g_autoptr (GError) error = NULL;
  GstElement *e;

  if (bin)
    e = gst_parse_bin_from_description_full (desc, TRUE, ctx, GST_PARSE_FLAG_FATAL_ERRORS,
        &error);
  else
    e = gst_parse_launch_full (desc, ctx, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  if (error) {
    *message = describe_parse_error (ctx, error);
    gst_clear_object (&e);
  }
  return e;
}

/* ---- bus ---- */

static gboolean
on_bus (GstBus *bus, GstMessage *msg, gpointer data)
{
  Node *n = data;

  (void) bus;
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR: {
      g_autoptr (GError) err = NULL;
      g_autofree gchar *dbg = NULL;

      gst_message_parse_error (msg, &err, &dbg);
      g_printerr ("%s: ERROR: %s\n", n->name, err->message);
      if (GST_IS_ELEMENT (GST_MESSAGE_SRC (msg)) &&
          g_str_has_prefix (GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), "videosink"))
        g_printerr ("%s: no video sink works on this display: install the Debian package "
            "%s (scripts/deps installs it), or run headless (unset DISPLAY)\n", n->name,
            pt_element_package ("ximagesink"));
      if (n->error == NULL)
        n->error = g_strdup (err->message);
      if (n == D.source) {
        D.exit_code = 1;
        g_main_loop_quit (D.loop);
      }
      break;
    }
    case GST_MESSAGE_WARNING: {
      g_autoptr (GError) err = NULL;

      gst_message_parse_warning (msg, &err, NULL);
      g_printerr ("%s: warning: %s\n", n->name, err->message);
      break;
    }
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);
      const gchar *name = s ? gst_structure_get_name (s) : "";

      if (g_str_equal (name, "missing-plugin") &&
          g_strcmp0 (gst_structure_get_string (s, "type"), "element") == 0) {
        const gchar *element = gst_structure_get_string (s, "detail");
        const gchar *pkg = element ? pt_element_package (element) : NULL;

        g_printerr ("%s: the GStreamer element '%s' is missing: install %s%s\n", n->name,
            element ? element : "?", pkg ? "the Debian package " : "the plugin that provides it",
            pkg ? pkg : "");
      } else if (g_str_equal (name, "peertree-tree-joined") ||
          g_str_equal (name, "peertree-upstream-changed")) {
        g_free (n->parent);
        n->parent = g_strdup (gst_structure_get_string (s, "parent-id"));
        gst_structure_get_uint (s, "depth", &n->depth);
        n->joined = TRUE;
        g_print ("[%5.1f s] %s: %s tree %s at depth %u under %s\n",
            (g_get_monotonic_time () - D.t0) / 1e6, n->name,
            g_str_equal (name, "peertree-tree-joined") ? "joined" : "moved in",
            gst_structure_get_string (s, "tree-id"), n->depth,
            n->parent ? n->parent : "(none: source)");
      } else if (g_str_equal (name, "peertree-child-added")) {
        n->children++;
      } else if (g_str_equal (name, "peertree-child-removed")) {
        n->children--;
      }
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static void
watch (Node *n)
{
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (n->pipeline));

  gst_bus_add_watch (bus, on_bus, n);
}

/* ---- viewers ---- */

static GstPadProbeReturn
count_video (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  Node *n = data;

  (void) info;
  if (g_atomic_int_add (&n->video_frames, 1) == 0) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);

    if (caps) {
      gst_structure_get_int (gst_caps_get_structure (caps, 0), "width", &n->width);
      gst_structure_get_int (gst_caps_get_structure (caps, 0), "height", &n->height);
    }
  }
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
count_audio (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  (void) pad;
  (void) info;
  g_atomic_int_inc (&((Node *) data)->audio_buffers);
  return GST_PAD_PROBE_OK;
}

/* peertreesrc exposed a stream: decode it into a window or a fakesink */
static void
on_pad_added (GstElement *src, GstPad *pad, gpointer data)
{
  Node *n = data;
  gboolean video = g_str_has_prefix (GST_PAD_NAME (pad), "video_");
  const gchar *desc;
  g_autofree gchar *windowed_desc = NULL;
  g_autofree gchar *message = NULL;
  GstElement *branch;
  g_autoptr (GstPad) sinkpad = NULL;
  GstElement *counted;

  (void) src;
  if (video && n->windowed) {
    const gchar *sink = g_getenv ("PEERTREE_DEMO_VIDEOSINK");

    desc = windowed_desc = g_strdup_printf ("queue max-size-buffers=3 leaky=downstream ! "
        "videoconvert ! identity name=count ! %s name=videosink sync=false",
        sink && *sink ? sink : "autovideosink");
  }
  else if (video)
    desc = "capsfilter caps=video/x-raw ! identity name=count ! fakesink sync=false";
  else
    desc = "capsfilter caps=audio/x-raw ! identity name=count ! fakesink sync=false";
  branch = parse_launch (desc, TRUE, &message);
  if (branch == NULL) {
    g_printerr ("%s: ERROR: %s\n", n->name, message);
    if (n->error == NULL)
      n->error = g_strdup (message);
    return;
  }
  gst_bin_add (GST_BIN (n->pipeline), branch);
  counted = gst_bin_get_by_name (GST_BIN (branch), "count");
  {
    g_autoptr (GstPad) cpad = gst_element_get_static_pad (counted, "sink");

    gst_pad_add_probe (cpad, GST_PAD_PROBE_TYPE_BUFFER, video ? count_video : count_audio,
        n, NULL);
  }
  gst_object_unref (counted);
  gst_element_sync_state_with_parent (branch);
  sinkpad = gst_element_get_static_pad (branch, "sink");
  if (GST_PAD_LINK_FAILED (gst_pad_link (pad, sinkpad)))
    g_printerr ("%s: could not link %s\n", n->name, GST_PAD_NAME (pad));
}

static Node *
viewer_new (guint index, const gchar *url, const gchar *tree, gboolean windowed)
{
  g_autofree gchar *name = g_strdup_printf ("viewer-%u", index);
  GstElement *pipeline = gst_pipeline_new (name);
  GstElement *src = gst_element_factory_make ("peertreesrc", NULL);
  Node *n = node_new (name, pipeline);

  n->windowed = windowed;
  g_object_set (src, "server", url, "tree-id", tree, "client-id", name,
      "local-addresses", "127.0.0.1", NULL);
  gst_bin_add (GST_BIN (pipeline), src);
  g_signal_connect (src, "pad-added", G_CALLBACK (on_pad_added), n);
  watch (n);
  return n;
}

/* ---- printing ---- */

static void
print_subtree (const gchar *id, guint indent)
{
  for (guint i = 0; i < D.viewers->len; i++) {
    Node *v = g_ptr_array_index (D.viewers, i);

    if (v->joined && g_strcmp0 (v->parent, id) == 0) {
      g_print ("  %*s`- %-10s depth %u  %5d video frames (%dx%d)  %5d audio buffers%s%s\n",
          (int) indent * 3, "", v->name, v->depth, g_atomic_int_get (&v->video_frames),
          v->width, v->height, g_atomic_int_get (&v->audio_buffers),
          v->windowed ? "  [window]" : "", v->error ? "  ERROR" : "");
      print_subtree (v->name, indent + 1);
    }
  }
}

static void
print_tree (void)
{
  g_print ("[%5.1f s] tree:\n  source (%u children)\n", (g_get_monotonic_time () - D.t0) / 1e6,
      D.source->children);
  print_subtree ("source", 0);
}

static gboolean
on_tick (gpointer data)
{
  (void) data;
  print_tree ();
  return G_SOURCE_CONTINUE;
}

typedef struct {
  guint index;
} JoinCtx;

static gboolean
join_next (gpointer data)
{
  JoinCtx *ctx = data;
  Node *v;

  if (ctx->index >= D.viewers->len)
    return G_SOURCE_REMOVE;
  v = g_ptr_array_index (D.viewers, ctx->index);
  gst_element_set_state (v->pipeline, GST_STATE_PLAYING);
  ctx->index++;
  return ctx->index < D.viewers->len ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
on_signal (gpointer data)
{
  (void) data;
  g_print ("\nstopping...\n");
  g_main_loop_quit (D.loop);
  return G_SOURCE_REMOVE;
}

static gboolean
on_timeout (gpointer data)
{
  (void) data;
  g_print ("\ndemo time is up, stopping...\n");
  g_main_loop_quit (D.loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  const gchar *url = argc > 1 ? argv[1] : "ws://127.0.0.1:8645";
  guint n_viewers = argc > 2 ? (guint) atoi (argv[2]) : 6;
  guint k = argc > 3 ? (guint) atoi (argv[3]) : 2;
  guint k1 = argc > 4 ? (guint) atoi (argv[4]) : 2;
  const gchar *env_seconds = g_getenv ("PEERTREE_DEMO_SECONDS");
  guint seconds = env_seconds ? (guint) atoi (env_seconds) : (isatty (0) ? 0 : 20);
  const gchar *display = g_getenv ("DISPLAY");
  const gchar *wayland = g_getenv ("WAYLAND_DISPLAY");
  gboolean has_display = (display && *display) || (wayland && *wayland);
  g_autofree gchar *desc = NULL;
  g_autofree gchar *message = NULL;
  GstElement *pipeline;
  JoinCtx join = { 0 };
  guint missing = 0;

  gst_init (&argc, &argv);
  if (gst_element_factory_find ("peertreesrc") == NULL) {
    g_printerr ("The peertree plugin is not found: set GST_PLUGIN_PATH to build/gst.\n");
    return 2;
  }
  D.loop = g_main_loop_new (NULL, FALSE);
  D.viewers = g_ptr_array_new_with_free_func ((GDestroyNotify) node_free);
  D.t0 = g_get_monotonic_time ();

  desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=demo client-id=source "
      "k=%u k1=%u local-addresses=127.0.0.1 "
      "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
      "! timeoverlay ! s.video_0 "
      "audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate=48000,channels=2 ! s.audio_0",
      url, k, k1);
  pipeline = parse_launch (desc, FALSE, &message);
  if (pipeline == NULL) {
    g_printerr ("source: ERROR: %s\n", message);
    return 2;
  }
  D.source = node_new ("source", pipeline);
  watch (D.source);

  for (guint i = 0; i < n_viewers; i++)
    g_ptr_array_add (D.viewers, viewer_new (i, url, "demo", i == 0 && has_display));

  g_print ("peertree demo: 1 source and %u viewers on %s, k1=%u k=%u; %s%s\n", n_viewers, url,
      k1, k, has_display ? "viewer-0 opens a window; " : "headless; ",
      seconds ? "stops by itself" : "Ctrl-C stops");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* viewers join one by one (breadth-first placement), after the source */
  g_timeout_add (500, join_next, &join);
  g_timeout_add_seconds (2, on_tick, NULL);
  g_unix_signal_add (SIGINT, on_signal, NULL);
  g_unix_signal_add (SIGTERM, on_signal, NULL);
  if (seconds)
    g_timeout_add_seconds (seconds, on_timeout, NULL);

  g_main_loop_run (D.loop);

  print_tree ();
  for (guint i = 0; i < D.viewers->len; i++) {
    Node *v = g_ptr_array_index (D.viewers, i);

    if (g_atomic_int_get (&v->video_frames) == 0)
      missing++;
  }
  /* viewers first, so the source sees its children leave */
  g_ptr_array_set_size (D.viewers, 0);
  node_free (D.source);
  g_ptr_array_unref (D.viewers);
  g_main_loop_unref (D.loop);
  if (missing) {
    g_printerr ("%u viewer(s) decoded no frame\n", missing);
    return 1;
  }
  g_print ("every viewer decoded video\n");
  return D.exit_code;
}
