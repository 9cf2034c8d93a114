/* peertree GStreamer elements — the children of an element
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-fanout.h"
#include "gstpeertreeelements.h"
#include "pt-webrtc.h"

typedef struct {
  PtLink *link;
  guint n_streams;              /* streams [0, n) are linked to this child */
  PtDataHub *data;              /* a ref, with a data channel */
} PtFanoutChild;

struct _PtFanout {
  GstElement *element;
  GstDebugCategory *debug;
  GMutex *streams_lock;
  PtFanoutGetTee get_tee;
  PeerTreeClient *client;
  gchar *const *tree_id;
  const PtLinkConfig *config;
  GMainContext *context;

  GHashTable *children;         /* child id → PtFanoutChild */
  GPtrArray *pending;           /* child ids waiting for the streams */
  PtDataHub *data;              /* a ref, or NULL: no data channels */
};

static void
child_free (gpointer data)
{
  PtFanoutChild *child = data;

  if (child->data) {
    pt_data_hub_remove_child (child->data, pt_link_get_peer_id (child->link));
    pt_data_hub_unref (child->data);
  }
  if (child->link) {
    pt_link_close (child->link);
    pt_link_unref (child->link);
  }
  g_free (child);
}

PtFanout *
pt_fanout_new (GstElement * element, GstDebugCategory * debug, GMutex * streams_lock,
    PtFanoutGetTee get_tee, PeerTreeClient * client, gchar * const *tree_id,
    const PtLinkConfig * config, GMainContext * context)
{
  PtFanout *f = g_new0 (PtFanout, 1);

  f->element = element;
  f->debug = debug;
  f->streams_lock = streams_lock;
  f->get_tee = get_tee;
  f->client = client;
  f->tree_id = tree_id;
  f->config = config;
  f->context = context;
  f->children = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, child_free);
  f->pending = g_ptr_array_new_with_free_func (g_free);
  return f;
}

void
pt_fanout_free (PtFanout * f)
{
  g_hash_table_unref (f->children);
  g_ptr_array_unref (f->pending);
  g_clear_pointer (&f->data, pt_data_hub_unref);
  g_free (f);
}

/* ---------------------------------------------------------------------- */
/* the children's links (loop thread) */

static void
on_child_description (PtLink * link, const gchar * type, const gchar * sdp, gpointer data)
{
  PtFanout *f = data;

  if (f->client && *f->tree_id)
    peer_tree_client_send_sdp (f->client, *f->tree_id, pt_link_get_peer_id (link), type, sdp);
}

static void
on_child_candidate (PtLink * link, guint mline, const gchar * candidate, gpointer data)
{
  PtFanout *f = data;

  if (f->client && *f->tree_id)
    peer_tree_client_send_ice (f->client, *f->tree_id, pt_link_get_peer_id (link), mline,
        candidate);
}

static void
on_child_state (PtLink * link, PtLinkState state, gpointer data)
{
  PtFanout *f = data;

  GST_CAT_DEBUG_OBJECT (f->debug, f->element, "child %s: %s", pt_link_get_peer_id (link),
      pt_link_state_to_string (state));
  /* reap dead children on ICE failure, not only when the server says so */
  if (state == PT_LINK_STATE_FAILED)
    pt_fanout_remove (f, pt_link_get_peer_id (link), "ICE failed");
}

static void
on_child_error (PtLink * link, const GError * error, gpointer data)
{
  PtFanout *f = data;

  GST_ELEMENT_WARNING (f->element, STREAM, FAILED,
      ("Could not negotiate with child %s", pt_link_get_peer_id (link)),
      ("%s", error->message));
  pt_fanout_remove (f, pt_link_get_peer_id (link), error->message);
}

static const PtLinkCallbacks child_callbacks = {
  .local_description = on_child_description,
  .local_candidate = on_child_candidate,
  .state_changed = on_child_state,
  .error = on_child_error,
};

/* Links the ready streams from child->n_streams on to the child. */
static gboolean
child_add_streams (PtFanout * f, PtFanoutChild * child, GError ** error)
{
  GstElement *tee;
  gboolean ok = TRUE;

  g_mutex_lock (f->streams_lock);
  while (ok && (tee = f->get_tee (f->element, child->n_streams)) != NULL) {
    ok = pt_link_add_relay_stream (child->link, tee, error);
    if (ok)
      child->n_streams++;
  }
  g_mutex_unlock (f->streams_lock);
  return ok;
}

/* ---------------------------------------------------------------------- */
/* children coming and going (loop thread) */

void
pt_fanout_start_child (PtFanout * f, const gchar * child_id, gboolean announce)
{
  g_autoptr (GError) error = NULL;
  PtFanoutChild *child = g_new0 (PtFanoutChild, 1);
  PtLinkConfig config = *f->config;     /* shallow: read during pt_link_new only */

  config.data = f->data != NULL;
  /* a relay's children get the reliability its parent chose (the source's) */
  if (f->data)
    pt_data_hub_get_parent_reliability (f->data, &config.data_ordered,
        &config.data_max_retransmits);
  child->link = pt_link_new (PT_LINK_ROLE_SENDER, child_id, GST_BIN (f->element), &config,
      &child_callbacks, f, NULL, f->context, &error);
  if (child->link == NULL || !child_add_streams (f, child, &error)) {
    GST_ELEMENT_WARNING (f->element, RESOURCE, FAILED,
        ("Could not set up the connection to child %s", child_id), ("%s", error->message));
    child_free (child);
    return;
  }
  g_hash_table_insert (f->children, g_strdup (child_id), child);
  pt_link_start (child->link);
  if (f->data) {
    g_autoptr (GstWebRTCDataChannel) channel = pt_link_get_data_channel (child->link);

    if (channel) {
      child->data = pt_data_hub_ref (f->data);
      pt_data_hub_add_child (child->data, child_id, channel);
    }
  }
  if (announce)
    pt_post_element_message (f->element, PT_MESSAGE_CHILD_ADDED,
        "tree-id", G_TYPE_STRING, *f->tree_id, "child-id", G_TYPE_STRING, child_id, NULL);
}

void
pt_fanout_add (PtFanout * f, const gchar * child_id, gboolean ready)
{
  /* announced again: one link, one child-added, whether it was linked or
   * still waiting */
  pt_fanout_forget (f, child_id);
  pt_fanout_remove (f, child_id, "rejoined");
  if (ready) {
    pt_fanout_start_child (f, child_id, TRUE);
  } else {
    GST_CAT_INFO_OBJECT (f->debug, f->element, "child %s waits for the streams", child_id);
    g_ptr_array_add (f->pending, g_strdup (child_id));
  }
}

void
pt_fanout_set_data (PtFanout * f, PtDataHub * hub)
{
  g_clear_pointer (&f->data, pt_data_hub_unref);
  if (hub)
    f->data = pt_data_hub_ref (hub);
}

void
pt_fanout_start_waiting (PtFanout * f)
{
  for (guint i = 0; i < f->pending->len; i++)
    pt_fanout_start_child (f, g_ptr_array_index (f->pending, i), TRUE);
  g_ptr_array_set_size (f->pending, 0);
}

void
pt_fanout_add_streams (PtFanout * f)
{
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, f->children);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    g_autoptr (GError) error = NULL;

    if (!child_add_streams (f, value, &error))
      GST_CAT_WARNING_OBJECT (f->debug, f->element, "adding a stream to a child: %s",
          error->message);
  }
}

void
pt_fanout_remove (PtFanout * f, const gchar * child_id, const gchar * reason)
{
  /* @child_id may be the link's own, freed with it */
  g_autofree gchar *id = g_strdup (child_id);

  if (!g_hash_table_remove (f->children, id))
    return;
  GST_CAT_INFO_OBJECT (f->debug, f->element, "child %s removed: %s", id, reason);
  pt_post_element_message (f->element, PT_MESSAGE_CHILD_REMOVED,
      "tree-id", G_TYPE_STRING, *f->tree_id, "child-id", G_TYPE_STRING, id,
      "reason", G_TYPE_STRING, reason, NULL);
}

void
pt_fanout_forget (PtFanout * f, const gchar * child_id)
{
  for (guint i = 0; i < f->pending->len; i++)
    if (g_str_equal (g_ptr_array_index (f->pending, i), child_id))
      g_ptr_array_remove_index (f->pending, i--);
}

GPtrArray *
pt_fanout_drop_children (PtFanout * f)
{
  GPtrArray *ids = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, f->children);
  while (g_hash_table_iter_next (&it, &key, NULL)) {
    g_ptr_array_add (ids, g_strdup (key));
    g_hash_table_iter_remove (&it);
  }
  return ids;
}

void
pt_fanout_clear (PtFanout * f)
{
  g_hash_table_remove_all (f->children);
  g_ptr_array_set_size (f->pending, 0);
}

/* ---------------------------------------------------------------------- */
/* remote signalling and statistics (loop thread) */

void
pt_fanout_set_remote_description (PtFanout * f, const gchar * peer_id, const gchar * type,
    const gchar * sdp)
{
  PtFanoutChild *child = g_hash_table_lookup (f->children, peer_id);

  if (child)
    pt_link_set_remote_description (child->link, type, sdp);
  else
    GST_CAT_WARNING_OBJECT (f->debug, f->element, "SDP %s from unknown peer %s", type,
        peer_id);
}

void
pt_fanout_add_remote_candidate (PtFanout * f, const gchar * peer_id, guint mline,
    const gchar * candidate)
{
  PtFanoutChild *child = g_hash_table_lookup (f->children, peer_id);

  if (child)
    pt_link_add_remote_candidate (child->link, mline, candidate);
}

guint
pt_fanout_n_connected (PtFanout * f)
{
  GHashTableIter it;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&it, f->children);
  while (g_hash_table_iter_next (&it, NULL, &value))
    n += pt_link_get_state (((PtFanoutChild *) value)->link) == PT_LINK_STATE_CONNECTED;
  return n;
}

void
pt_fanout_append_stats (PtFanout * f, GValue * list)
{
  GHashTableIter it;
  gpointer key, value;

  g_hash_table_iter_init (&it, f->children);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    PtFanoutChild *child = value;
    GstStructure *s = gst_structure_new ("child",
        "child-id", G_TYPE_STRING, (const gchar *) key,
        "state", G_TYPE_STRING, pt_link_state_to_string (pt_link_get_state (child->link)),
        "n-streams", G_TYPE_UINT, child->n_streams,
        "ice-restarts", G_TYPE_UINT, pt_link_get_ice_restarts (child->link), NULL);
    GstStructure *webrtc = pt_link_get_stats (child->link);
    GstStructure *repair = pt_link_get_repair_stats (child->link, webrtc);
    GValue v = G_VALUE_INIT;

    gst_structure_set (s, "repair", GST_TYPE_STRUCTURE, repair, NULL);
    gst_structure_free (repair);
    if (webrtc) {
      const gchar *local, *remote;

      if (pt_webrtc_stats_selected_pair (webrtc, &local, &remote))
        gst_structure_set (s, "local-candidate-type", G_TYPE_STRING, local,
            "remote-candidate-type", G_TYPE_STRING, remote, NULL);
      gst_structure_set (s, "webrtc", GST_TYPE_STRUCTURE, webrtc, NULL);
      gst_structure_free (webrtc);
    }
    g_value_init (&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed (&v, s);
    gst_value_list_append_and_take_value (list, &v);
  }
}

GHashTable *
pt_fanout_sample_loss (PtFanout * f)
{
  GHashTable *out = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTableIter it;
  gpointer key, value;

  g_hash_table_iter_init (&it, f->children);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    PtFanoutChild *child = value;
    g_autoptr (GstStructure) stats = NULL;
    gdouble fraction;

    if (pt_link_get_state (child->link) != PT_LINK_STATE_CONNECTED)
      continue;
    stats = pt_link_get_stats (child->link);
    if (pt_webrtc_stats_remote_fraction_lost (stats, &fraction))
      g_hash_table_insert (out, g_strdup (key), g_memdup2 (&fraction, sizeof fraction));
  }
  return out;
}
