/* peertree GStreamer elements — the parent of a viewer, and re-parenting
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-upstream.h"
#include "gstpeertreeelements.h"
#include "pt-webrtc.h"

#include <gst/webrtc/webrtc.h>

/* An upstream link that stays "disconnected" this long is lost. The link
 * itself reports "failed" once the parent's ICE restarts did not bring it
 * back (PT_LINK_ICE_RESTART_WAIT_MS, pt-link.h); this is the backstop. */
#define UPSTREAM_DISCONNECTED_MS (PT_LINK_ICE_RESTART_WAIT_MS + 2000)

struct _PtUpstream {
  GstElement *element;
  GstDebugCategory *debug;
  PtUpstreamCallbacks callbacks;
  PeerTreeClient *client;
  gchar *const *tree_id;
  const PtLinkConfig *config;
  GMainContext *context;
  GCancellable *cancellable;
  gchar *server;

  gchar *parent_id;
  guint depth;
  gboolean joined_posted;       /* tree-joined message posted for this join */
  PtLink *link;
  gchar *session;               /* SDP session id of the parent's offer */
  GSource *disconnected_timer;  /* the link's ICE disconnected since */
  gboolean lost;                /* the parent is unreachable: a new one is needed */
  gboolean reconnecting;        /* reconnect-upstream in flight */
  gboolean source_lost;         /* the server waits for the tree's source */

  /* the link's counters at the last report (pt_upstream_fill_report) */
  PtLink *report_link;          /* not a ref: only compared */
  gint64 report_at;
  guint64 report_bytes, report_packets;
  gint64 report_lost;
};

/* A reconnect-upstream request; the reply is dropped after stop. */
typedef struct {
  PtCall *call;
  PtUpstream *upstream;         /* valid unless the call is stopped */
} PtUpstreamCall;

PtUpstream *
pt_upstream_new (GstElement * element, GstDebugCategory * debug,
    const PtUpstreamCallbacks * callbacks, PeerTreeClient * client, gchar * const *tree_id,
    const PtLinkConfig * config, GMainContext * context, GCancellable * cancellable,
    const gchar * server)
{
  PtUpstream *u = g_new0 (PtUpstream, 1);

  u->element = element;
  u->debug = debug;
  u->callbacks = *callbacks;
  u->client = client;
  u->tree_id = tree_id;
  u->config = config;
  u->context = context;
  u->cancellable = cancellable;
  u->server = g_strdup (server);
  return u;
}

void
pt_upstream_free (PtUpstream * u)
{
  pt_upstream_close (u);
  g_free (u->parent_id);
  g_free (u->server);
  g_free (u);
}

/* ---------------------------------------------------------------------- */
/* the link to the parent (loop thread, but for on_pad_added) */

static void request_new_upstream (PtUpstream * u);

static void
on_description (PtLink * link, const gchar * type, const gchar * sdp, gpointer data)
{
  PtUpstream *u = data;

  if (u->client && *u->tree_id)
    peer_tree_client_send_sdp (u->client, *u->tree_id, pt_link_get_peer_id (link), type, sdp);
}

static void
on_candidate (PtLink * link, guint mline, const gchar * candidate, gpointer data)
{
  PtUpstream *u = data;

  if (u->client && *u->tree_id)
    peer_tree_client_send_ice (u->client, *u->tree_id, pt_link_get_peer_id (link), mline,
        candidate);
}

/* The parent is unreachable (ICE failed, or disconnected for too long):
 * ask the server for another one, unless the parent is the tree's source
 * and the server is waiting for it to come back (then the returning source,
 * or the end of the tree, settles it). */
static void
upstream_lost (PtUpstream * u, const gchar * reason)
{
  if (u->lost)
    return;
  u->lost = TRUE;
  GST_CAT_INFO_OBJECT (u->debug, u->element, "lost the parent %s: %s", u->parent_id, reason);
  pt_post_element_message (u->element, PT_MESSAGE_UPSTREAM_LOST,
      "tree-id", G_TYPE_STRING, *u->tree_id, "parent-id", G_TYPE_STRING,
      u->parent_id, "reason", G_TYPE_STRING, reason, NULL);
  request_new_upstream (u);
}

static gboolean
on_disconnected_timeout (gpointer data)
{
  PtUpstream *u = data;

  g_clear_pointer (&u->disconnected_timer, g_source_unref);
  if (u->link && pt_link_get_state (u->link) == PT_LINK_STATE_DISCONNECTED)
    upstream_lost (u, "ICE disconnected");
  return G_SOURCE_REMOVE;
}

static void
clear_disconnected_timer (PtUpstream * u)
{
  if (u->disconnected_timer) {
    g_source_destroy (u->disconnected_timer);
    g_clear_pointer (&u->disconnected_timer, g_source_unref);
  }
}

static void
on_state (PtLink * link, PtLinkState state, gpointer data)
{
  PtUpstream *u = data;

  GST_CAT_DEBUG_OBJECT (u->debug, u->element, "%s: %s", pt_link_get_peer_id (link),
      pt_link_state_to_string (state));
  if (link != u->link)
    return;
  switch (state) {
    case PT_LINK_STATE_CONNECTED:
      clear_disconnected_timer (u);
      break;
    case PT_LINK_STATE_DISCONNECTED:
      if (u->disconnected_timer == NULL) {
        u->disconnected_timer = g_timeout_source_new (UPSTREAM_DISCONNECTED_MS);
        g_source_set_callback (u->disconnected_timer, on_disconnected_timeout, u, NULL);
        g_source_attach (u->disconnected_timer, u->context);
      }
      break;
    case PT_LINK_STATE_FAILED:
      clear_disconnected_timer (u);
      upstream_lost (u, "ICE failed");
      break;
    default:
      break;
  }
}

static void
on_error (PtLink * link, const GError * error, gpointer data)
{
  PtUpstream *u = data;

  if (link == u->link)
    GST_ELEMENT_ERROR (u->element, STREAM, FAILED,
        ("Could not negotiate with the parent peer %s.", pt_link_get_peer_id (link)),
        ("%s", error->message));
}

/* streaming thread */
static void
on_pad_added (PtLink * link, GstPad * pad, gpointer data)
{
  PtUpstream *u = data;

  u->callbacks.pad_added (u->element, link, pad);
}

/* a webrtcbin thread */
static void
on_data_channel (PtLink * link, GstWebRTCDataChannel * channel, gpointer data)
{
  PtUpstream *u = data;

  if (u->callbacks.data_channel)
    u->callbacks.data_channel (u->element, link, channel);
}

static const PtLinkCallbacks link_callbacks = {
  .local_description = on_description,
  .local_candidate = on_candidate,
  .state_changed = on_state,
  .error = on_error,
  .pad_added = on_pad_added,
  .data_channel = on_data_channel,
};

void
pt_upstream_close (PtUpstream * u)
{
  /* releases a streaming thread of this link waiting in the owner's
   * pad_added for a new source */
  u->callbacks.link_changed (u->element);
  clear_disconnected_timer (u);
  g_clear_pointer (&u->session, g_free);
  if (u->link) {
    pt_link_close (u->link);
    g_clear_pointer (&u->link, pt_link_unref);
  }
}

/* A new link to @parent_id (the parent offers; the link answers). The
 * owner's tees, children and local output stay: the new link's src pads are
 * linked into the same tees as they appear. Unless @force, an existing link
 * to the same parent is kept. */
static void
set_parent (PtUpstream * u, const gchar * parent_id, gboolean force)
{
  g_autoptr (GError) error = NULL;

  if (!force && u->link && g_strcmp0 (pt_link_get_peer_id (u->link), parent_id) == 0)
    return;
  pt_upstream_close (u);
  g_free (u->parent_id);
  u->parent_id = g_strdup (parent_id);
  u->lost = FALSE;
  if (parent_id == NULL)
    return;
  u->callbacks.link_changed (u->element);
  u->link = pt_link_new (PT_LINK_ROLE_RECEIVER, parent_id, GST_BIN (u->element), u->config,
      &link_callbacks, u, NULL, u->context, &error);
  if (u->link == NULL) {
    GST_ELEMENT_ERROR (u->element, CORE, FAILED, ("Cannot receive from the parent peer."),
        ("%s", error->message));
    return;
  }
  pt_link_start (u->link);
}

/* ---------------------------------------------------------------------- */
/* asking the server for a new parent (loop thread) */

static void
on_upstream_reconnected (GObject * source, GAsyncResult * res, gpointer data)
{
  PtUpstreamCall *uc = data;
  PtUpstream *u = uc->upstream;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *parent = NULL;
  guint depth = 0;
  gboolean ok = peer_tree_client_reconnect_upstream_finish (PEER_TREE_CLIENT (source), res,
      &parent, &depth, &error);

  if (pt_call_stopped (uc->call)) {
    pt_call_free (uc->call);
    g_free (uc);
    return;
  }
  u->reconnecting = FALSE;
  if (ok) {
    /* upstream-changed already gave us the new parent */
    GST_CAT_INFO_OBJECT (u->debug, u->element, "new parent %s at depth %u", parent, depth);
  } else if (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_CLOSED) ||
      g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TIMEOUT)) {
    /* the server is away: asked again once the client is reconnected */
    GST_CAT_INFO_OBJECT (u->debug, u->element,
        "reconnect-upstream: %s; retrying after reconnection", error->message);
  } else {
    GST_ELEMENT_WARNING (u->element, RESOURCE, READ,
        ("The peertree server %s found no new parent peer.", u->server),
        ("reconnect-upstream: %s", error->message));
  }
  pt_call_free (uc->call);
  g_free (uc);
}

static void
request_new_upstream (PtUpstream * u)
{
  PtUpstreamCall *uc;

  if (u->reconnecting || u->client == NULL || *u->tree_id == NULL)
    return;
  if (u->source_lost && u->depth <= 1) {
    GST_CAT_INFO_OBJECT (u->debug, u->element, "the source is away: waiting for it");
    return;
  }
  if (!peer_tree_client_is_connected (u->client)) {
    GST_CAT_INFO_OBJECT (u->debug, u->element,
        "no server connection: asking after reconnection");
    return;
  }
  u->reconnecting = TRUE;
  uc = g_new0 (PtUpstreamCall, 1);
  uc->call = pt_call_new (u->element, u->cancellable);
  uc->upstream = u;
  peer_tree_client_reconnect_upstream_async (u->client, *u->tree_id, NULL,
      on_upstream_reconnected, uc);
}

/* ---------------------------------------------------------------------- */
/* signalling (loop thread) */

/* The client emits tree-joined (tree, depth) and then upstream-changed (tree,
 * parent, depth) for a join: the first upstream-changed after a join is
 * posted as the tree-joined message, which then names the parent too. */
void
pt_upstream_tree_joined (PtUpstream * u, guint depth)
{
  u->depth = depth;
  u->joined_posted = FALSE;
}

void
pt_upstream_changed (PtUpstream * u, const gchar * tree_id, const gchar * parent_id,
    guint depth)
{
  const gchar *name = PT_MESSAGE_UPSTREAM_CHANGED;

  u->depth = depth;
  u->source_lost = FALSE;
  /* the parent will offer; the receiver link answers. A new link even to
   * the same parent if the old one is lost (the parent offers anew). */
  set_parent (u, parent_id, u->lost);
  if (!u->joined_posted) {
    u->joined_posted = TRUE;
    name = PT_MESSAGE_TREE_JOINED;
  }
  GST_CAT_INFO_OBJECT (u->debug, u->element, "%s: parent %s, depth %u", name, parent_id,
      depth);
  pt_post_element_message (u->element, name,
      "tree-id", G_TYPE_STRING, tree_id, "client-id", G_TYPE_STRING,
      peer_tree_client_get_client_id (u->client), "parent-id", G_TYPE_STRING, parent_id,
      "depth", G_TYPE_UINT, depth, NULL);
}

void
pt_upstream_source_lost (PtUpstream * u)
{
  u->source_lost = TRUE;
}

void
pt_upstream_reconnected (PtUpstream * u)
{
  if (u->lost)
    request_new_upstream (u);
}

gboolean
pt_upstream_reconnect (PtUpstream * u)
{
  if (*u->tree_id == NULL || u->parent_id == NULL)
    return FALSE;
  GST_CAT_INFO_OBJECT (u->debug, u->element, "asked for a new parent (now %s)", u->parent_id);
  /* the current link is given up even if the server gives the same parent */
  u->lost = TRUE;
  request_new_upstream (u);
  return TRUE;
}

gboolean
pt_upstream_take_offer (PtUpstream * u, const gchar * peer_id, const gchar * sdp)
{
  g_autofree gchar *session = pt_link_sdp_session_id (sdp);

  /* only a parent offers; the server relays only parent ↔ child */
  if (u->link == NULL || g_strcmp0 (peer_id, u->parent_id) != 0) {
    set_parent (u, peer_id, FALSE);
  } else if (u->session && g_strcmp0 (session, u->session) != 0) {
    /* a new peer connection from the same parent (it restarted, lost us,
     * or renews its links for a new source), not a renegotiation */
    GST_CAT_INFO_OBJECT (u->debug, u->element, "new session from parent %s", peer_id);
    set_parent (u, peer_id, TRUE);
  }
  if (u->depth <= 1)
    u->source_lost = FALSE;     /* the source offers: it is back */
  if (u->link == NULL)
    return FALSE;
  g_free (u->session);
  u->session = g_steal_pointer (&session);
  return TRUE;
}

void
pt_upstream_set_remote_description (PtUpstream * u, const gchar * type, const gchar * sdp)
{
  if (u->link)
    pt_link_set_remote_description (u->link, type, sdp);
}

gboolean
pt_upstream_remote_has_data (PtUpstream * u)
{
  return u->link && pt_link_remote_has_data (u->link);
}

guint
pt_upstream_get_n_remote_streams (PtUpstream * u)
{
  return u->link ? pt_link_get_n_remote_streams (u->link) : 0;
}

gboolean
pt_upstream_add_remote_candidate (PtUpstream * u, const gchar * peer_id, guint mline,
    const gchar * candidate)
{
  if (u->link == NULL || g_strcmp0 (peer_id, u->parent_id) != 0)
    return FALSE;
  pt_link_add_remote_candidate (u->link, mline, candidate);
  return TRUE;
}

static guint64
field_uint64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;
  guint u = 0;

  if (gst_structure_get_uint64 (s, field, &v))
    return v;
  if (gst_structure_get_uint (s, field, &u))
    return u;
  return 0;
}

/* Sums the inbound-rtp streams of webrtcbin's @stats. */
static void
sum_inbound (const GstStructure * stats, guint64 * bytes, guint64 * packets, gint64 * lost)
{
  *bytes = *packets = 0;
  *lost = 0;
  for (gint i = 0; i < gst_structure_n_fields (stats); i++) {
    const GValue *v = gst_structure_get_value (stats, gst_structure_nth_field_name (stats, i));
    const GstStructure *s;
    GstWebRTCStatsType type;
    gint64 l = 0;

    if (!GST_VALUE_HOLDS_STRUCTURE (v))
      continue;
    s = gst_value_get_structure (v);
    if (!gst_structure_get_enum (s, "type", GST_TYPE_WEBRTC_STATS_TYPE, (gint *) & type)
        || type != GST_WEBRTC_STATS_INBOUND_RTP)
      continue;
    *bytes += field_uint64 (s, "bytes-received");
    *packets += field_uint64 (s, "packets-received");
    if (gst_structure_get_int64 (s, "packets-lost", &l) && l > 0)
      *lost += l;
  }
}

void
pt_upstream_fill_report (PtUpstream * u, PeerTreeLinkReport * report)
{
  GstStructure *stats, *repair;
  guint64 bytes, packets, rtt;
  gint64 lost, now = g_get_monotonic_time ();

  if (!u->link || pt_link_get_state (u->link) != PT_LINK_STATE_CONNECTED)
    return;
  stats = pt_link_get_stats (u->link);
  if (!stats)
    return;
  repair = pt_link_get_repair_stats (u->link, stats);
  sum_inbound (stats, &bytes, &packets, &lost);
  /* rates over the time since the last report on this same link */
  if (u->report_link == u->link && now > u->report_at && bytes >= u->report_bytes
      && packets >= u->report_packets) {
    gdouble secs = (now - u->report_at) / (gdouble) G_USEC_PER_SEC;
    guint64 dp = packets - u->report_packets;
    gint64 dl = MAX (lost - u->report_lost, 0);

    report->bitrate_kbps = (gint64) ((bytes - u->report_bytes) * 8 / 1000.0 / secs);
    if (dp + dl > 0)
      report->loss_percent = 100.0 * dl / (dp + dl);
  }
  u->report_link = u->link;
  u->report_at = now;
  u->report_bytes = bytes;
  u->report_packets = packets;
  u->report_lost = lost;
  /* the round trip a repair measured (ns), once there was one */
  rtt = field_uint64 (repair, "rtx-rtt");
  if (rtt > 0)
    report->rtt_ms = rtt / GST_MSECOND;
  gst_structure_free (repair);
  gst_structure_free (stats);
}

void
pt_upstream_append_stats (PtUpstream * u, GstStructure * s)
{
  gst_structure_set (s, "depth", G_TYPE_UINT, u->depth,
      "parent-id", G_TYPE_STRING, u->parent_id,
      "upstream-state", G_TYPE_STRING, u->link ?
      pt_link_state_to_string (pt_link_get_state (u->link)) : "none",
      "upstream-ice-restarts", G_TYPE_UINT, u->link ? pt_link_get_ice_restarts (u->link) : 0,
      NULL);
  if (u->link) {
    GstStructure *up = pt_link_get_stats (u->link);
    GstStructure *repair = pt_link_get_repair_stats (u->link, up);

    gst_structure_set (s, "upstream-repair", GST_TYPE_STRUCTURE, repair, NULL);
    gst_structure_free (repair);
    if (up) {
      const gchar *local, *remote;

      if (pt_webrtc_stats_selected_pair (up, &local, &remote))
        gst_structure_set (s, "upstream-local-candidate-type", G_TYPE_STRING, local,
            "upstream-remote-candidate-type", G_TYPE_STRING, remote, NULL);
      gst_structure_set (s, "upstream-webrtc", GST_TYPE_STRUCTURE, up, NULL);
      gst_structure_free (up);
    }
  }
}

gboolean
pt_upstream_sample_counts (PtUpstream * u, guint64 * lost, guint64 * received,
    gconstpointer * link)
{
  g_autoptr (GstStructure) stats = NULL;

  *link = u->link;
  if (u->link == NULL || pt_link_get_state (u->link) != PT_LINK_STATE_CONNECTED)
    return FALSE;
  stats = pt_link_get_stats (u->link);
  return pt_webrtc_stats_inbound_counts (stats, lost, received);
}
