/* peertree GStreamer elements — what peertreesink and peertreesrc share
 * between the element and the signalling
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-session.h"

#include <string.h>

#define ELEMENT(s) ((s)->element)

void
pt_session_init (PtSession * s, GstElement * element, GstDebugCategory * debug,
    const PtSessionCallbacks * callbacks, GMutex * streams_lock)
{
  memset (s, 0, sizeof (*s));
  s->element = element;
  s->debug = debug;
  s->callbacks = callbacks;
  s->streams_lock = streams_lock;
  pt_link_config_init (&s->config);
}

void
pt_session_clear (PtSession * s)
{
  pt_link_config_clear (&s->config);
  g_clear_pointer (&s->token, g_free);
  g_clear_pointer (&s->tls_ca, g_free);
}

gboolean
pt_session_is_active_tree (PtSession * s, const gchar * tree_id)
{
  return g_strcmp0 (tree_id, s->active_tree) == 0;
}

/* ---------------------------------------------------------------------- */
/* client signals (loop thread) */

static void
on_tree_joined (PeerTreeClient * client, const gchar * tree_id, guint depth, gpointer data)
{
  PtSession *s = data;

  (void) client;
  s->callbacks->tree_joined (ELEMENT (s), tree_id, depth);
}

static void
forget_child (PtSession * s, const gchar * child_id)
{
  if (s->callbacks->forget_child)
    s->callbacks->forget_child (ELEMENT (s), child_id);
}

static void
on_downstream_added (PeerTreeClient * client, const gchar * tree_id, const gchar * child_id,
    gpointer data)
{
  PtSession *s = data;

  (void) client;
  if (!pt_session_is_active_tree (s, tree_id))
    return;
  forget_child (s, child_id);
  pt_fanout_add (s->children, child_id, s->callbacks->children_ready (ELEMENT (s)));
}

static void
on_downstream_removed (PeerTreeClient * client, const gchar * tree_id,
    const gchar * child_id, gpointer data)
{
  PtSession *s = data;

  (void) client;
  if (!pt_session_is_active_tree (s, tree_id))
    return;
  pt_fanout_forget (s->children, child_id);
  forget_child (s, child_id);
  pt_fanout_remove (s->children, child_id, "left the tree");
}

static void
on_remote_sdp (PeerTreeClient * client, const gchar * tree_id, const gchar * peer_id,
    const gchar * type, const gchar * sdp, gpointer data)
{
  PtSession *s = data;

  (void) client;
  if (!pt_session_is_active_tree (s, tree_id))
    return;
  if (s->callbacks->remote_sdp && s->callbacks->remote_sdp (ELEMENT (s), peer_id, type, sdp))
    return;
  pt_fanout_set_remote_description (s->children, peer_id, type, sdp);
}

static void
on_remote_ice (PeerTreeClient * client, const gchar * tree_id, const gchar * peer_id,
    guint mline, const gchar * candidate, gpointer data)
{
  PtSession *s = data;

  (void) client;
  if (!pt_session_is_active_tree (s, tree_id))
    return;
  if (s->callbacks->remote_ice &&
      s->callbacks->remote_ice (ELEMENT (s), peer_id, mline, candidate))
    return;
  pt_fanout_add_remote_candidate (s->children, peer_id, mline, candidate);
}

static const gchar *
describe_tree_closed (const gchar * reason)
{
  if (g_strcmp0 (reason, "source-left") == 0)
    return "the source ended the broadcast";
  if (g_strcmp0 (reason, "source-timeout") == 0)
    return "the source did not come back within the server's grace period";
  if (g_strcmp0 (reason, "source-disconnected") == 0)
    return "the source disconnected";
  if (g_strcmp0 (reason, "source-not-back") == 0)
    return "the source did not come back after the server restarted";
  return reason;
}

static void
on_tree_closed (PeerTreeClient * client, const gchar * tree_id, const gchar * reason,
    gpointer data)
{
  PtSession *s = data;

  (void) client;
  pt_post_element_message (ELEMENT (s), PT_MESSAGE_TREE_CLOSED,
      "tree-id", G_TYPE_STRING, tree_id, "reason", G_TYPE_STRING, reason,
      "description", G_TYPE_STRING, describe_tree_closed (reason), NULL);
  if (!pt_session_is_active_tree (s, tree_id))
    return;
  s->callbacks->tree_closed (ELEMENT (s), tree_id, reason, describe_tree_closed (reason));
}

static void
on_client_error (PeerTreeClient * client, GError * error, gpointer data)
{
  PtSession *s = data;

  (void) client;
  pt_post_client_error (ELEMENT (s), error, "signalling", s->server, s->active_tree);
}

static void
on_disconnected (PeerTreeClient * client, gpointer data)
{
  PtSession *s = data;

  (void) client;
  if (g_cancellable_is_cancelled (s->cancellable))
    return;
  /* the links stay: media keeps flowing while the client reconnects (with
   * backoff) and re-registers its place in the tree */
  pt_post_element_message (ELEMENT (s), PT_MESSAGE_SERVER_DISCONNECTED,
      "server", G_TYPE_STRING, s->server, NULL);
  GST_ELEMENT_WARNING (ELEMENT (s), RESOURCE, OPEN_READ_WRITE,
      ("Lost the connection to the peertree server %s; %s", s->server,
          s->callbacks->disconnected_consequence), (NULL));
}

/* The ICE servers the signalling server handed out in its hello reply
 * (fresh TURN credentials on every connection) go into the links' config,
 * for the links made from now on, unless the element's own stun-server or
 * turn-server property is set. */
static void
take_ice_servers (PtSession * s)
{
  g_auto (GStrv) servers = peer_tree_client_get_ice_servers (s->client);
  gboolean stun = FALSE, turn = FALSE;

  for (guint i = 0; servers && servers[i]; i++) {
    gboolean is_stun = g_str_has_prefix (servers[i], "stun");
    gchar **field = is_stun ? &s->config.stun_server : &s->config.turn_server;

    if ((is_stun ? s->own_stun : s->own_turn) || (is_stun ? stun : turn))
      continue;                 /* the element's own, or the first of its kind */
    g_free (*field);
    *field = g_strdup (servers[i]);
    if (is_stun)
      stun = TRUE;
    else
      turn = TRUE;
    GST_CAT_INFO_OBJECT (s->debug, ELEMENT (s), "%s server from %s: %s",
        is_stun ? "STUN" : "TURN", s->server, is_stun ? servers[i] : "(with credentials)");
  }
}

static void
on_reconnected (PeerTreeClient * client, gpointer data)
{
  PtSession *s = data;

  (void) client;
  GST_CAT_INFO_OBJECT (s->debug, ELEMENT (s), "reconnected to %s", s->server);
  take_ice_servers (s);
  pt_post_element_message (ELEMENT (s), PT_MESSAGE_SERVER_RECONNECTED,
      "server", G_TYPE_STRING, s->server, NULL);
  if (s->callbacks->reconnected)
    s->callbacks->reconnected (ELEMENT (s));
}

/* The connection request; the session lives as long as the element the
 * call holds. */
typedef struct {
  PtSession *session;
  PtCall *call;
} PtSessionCall;

static void
on_connected (GObject * source, GAsyncResult * res, gpointer data)
{
  PtSessionCall *sc = data;
  PtSession *s = sc->session;
  PtCall *call = sc->call;
  g_autoptr (GError) error = NULL;
  gboolean ok = peer_tree_client_connect_finish (PEER_TREE_CLIENT (source), res, &error);

  g_free (sc);
  if (pt_call_stopped (call) || !ok) {
    if (!pt_call_stopped (call))
      pt_post_client_error (ELEMENT (s), error, "connect", s->server, NULL);
    pt_call_free (call);
    return;
  }
  take_ice_servers (s);
  s->callbacks->connected (ELEMENT (s), call);
}

/* ---------------------------------------------------------------------- */
/* start and stop (loop thread) */

typedef struct {
  PtSession *session;
  const gchar *server;
  const gchar *client_id;
} PtSessionStart;

/* Every report-interval seconds: the element's link figures to the server
 * (its dashboard and metrics). A refusal is logged at debug level. */
static gboolean
on_report_timer (gpointer data)
{
  PtSession *s = data;
  PeerTreeLinkReport report = PEER_TREE_LINK_REPORT_INIT;

  if (!s->client || !s->active_tree || !peer_tree_client_is_connected (s->client))
    return G_SOURCE_CONTINUE;
  report.child_count = s->children ? (gint) pt_fanout_n_connected (s->children) : 0;
  if (s->callbacks->fill_report)
    s->callbacks->fill_report (ELEMENT (s), &report);
  peer_tree_client_send_report (s->client, s->active_tree, &report);
  return G_SOURCE_CONTINUE;
}

static gboolean
start_in_loop (gpointer data)
{
  PtSessionStart *start = data;
  PtSession *s = start->session;
  PtSessionCall *sc = g_new0 (PtSessionCall, 1);

  s->server = g_strdup (start->server);
  s->cancellable = g_cancellable_new ();
  s->own_stun = s->config.stun_server && *s->config.stun_server;
  s->own_turn = s->config.turn_server && *s->config.turn_server;
  /* binds to this thread's default context */
  s->client = s->callbacks->make_client (ELEMENT (s), start->server,
      start->client_id && *start->client_id ? start->client_id : NULL);
  if (s->token && *s->token)
    g_object_set (s->client, "token", s->token, NULL);
  if (s->tls_ca && *s->tls_ca)
    g_object_set (s->client, "tls-ca", s->tls_ca, NULL);
  s->children = pt_fanout_new (ELEMENT (s), s->debug, s->streams_lock, s->callbacks->get_tee,
      s->client, &s->active_tree, &s->config, pt_loop_get_context (s->loop));
  if (s->callbacks->started)
    s->callbacks->started (ELEMENT (s));
  g_signal_connect (s->client, "tree-joined", G_CALLBACK (on_tree_joined), s);
  g_signal_connect (s->client, "downstream-added", G_CALLBACK (on_downstream_added), s);
  g_signal_connect (s->client, "downstream-removed", G_CALLBACK (on_downstream_removed), s);
  g_signal_connect (s->client, "remote-sdp", G_CALLBACK (on_remote_sdp), s);
  g_signal_connect (s->client, "remote-ice", G_CALLBACK (on_remote_ice), s);
  g_signal_connect (s->client, "tree-closed", G_CALLBACK (on_tree_closed), s);
  g_signal_connect (s->client, "error", G_CALLBACK (on_client_error), s);
  g_signal_connect (s->client, "disconnected", G_CALLBACK (on_disconnected), s);
  g_signal_connect (s->client, "reconnected", G_CALLBACK (on_reconnected), s);
  if (s->report_interval) {
    s->report_timer = g_timeout_source_new_seconds (s->report_interval);
    g_source_set_callback (s->report_timer, on_report_timer, s, NULL);
    g_source_attach (s->report_timer, pt_loop_get_context (s->loop));
  }
  sc->session = s;
  sc->call = pt_call_new (ELEMENT (s), s->cancellable);
  peer_tree_client_connect_async (s->client, NULL, on_connected, sc);
  return G_SOURCE_REMOVE;
}

static gboolean
stop_in_loop (gpointer data)
{
  PtSession *s = data;

  g_cancellable_cancel (s->cancellable);
  if (s->report_timer) {
    g_source_destroy (s->report_timer);
    g_clear_pointer (&s->report_timer, g_source_unref);
  }
  /* links first (their callbacks use the client), then signalling */
  g_clear_pointer (&s->children, pt_fanout_free);
  if (s->callbacks->stopping)
    s->callbacks->stopping (ELEMENT (s));
  if (s->client)
    g_signal_handlers_disconnect_by_data (s->client, ELEMENT (s));
  pt_client_close (&s->client, s, s->active_tree);
  g_clear_object (&s->cancellable);
  g_clear_pointer (&s->active_tree, g_free);
  g_clear_pointer (&s->server, g_free);
  g_clear_pointer (&s->token, g_free);
  g_clear_pointer (&s->tls_ca, g_free);
  return G_SOURCE_REMOVE;
}

void
pt_session_take_settings (PtSession * s, const PtSettings * settings)
{
  pt_settings_fill_link_config (settings, &s->config);
  g_free (s->token);
  s->token = g_strdup (settings->token);
  g_free (s->tls_ca);
  s->tls_ca = g_strdup (settings->tls_ca);
  s->report_interval = settings->report_interval;
}

void
pt_session_start (PtSession * s, const gchar * thread_name, const gchar * server,
    const gchar * client_id)
{
  PtLoop *loop = pt_loop_new (thread_name);
  PtSessionStart start = { s, server, client_id };

  GST_OBJECT_LOCK (ELEMENT (s));
  s->loop = loop;
  GST_OBJECT_UNLOCK (ELEMENT (s));
  pt_loop_invoke_sync (loop, start_in_loop, &start);
}

gboolean
pt_session_stop (PtSession * s)
{
  PtLoop *loop;

  GST_OBJECT_LOCK (ELEMENT (s));
  loop = s->loop;
  GST_OBJECT_UNLOCK (ELEMENT (s));
  if (loop == NULL)
    return FALSE;
  pt_loop_invoke_sync (loop, stop_in_loop, s);
  GST_OBJECT_LOCK (ELEMENT (s));
  s->loop = NULL;
  GST_OBJECT_UNLOCK (ELEMENT (s));
  pt_loop_free (loop);
  pt_link_config_clear (&s->config);
  return TRUE;
}

gboolean
pt_session_invoke (PtSession * s, GSourceFunc func, gpointer data, GDestroyNotify notify)
{
  gboolean running;

  GST_OBJECT_LOCK (ELEMENT (s));
  running = s->loop != NULL;
  if (running)
    pt_loop_invoke (s->loop, func, data, notify);
  GST_OBJECT_UNLOCK (ELEMENT (s));
  if (!running && notify)
    notify (data);
  return running;
}

gboolean
pt_session_invoke_sync (PtSession * s, GSourceFunc func, gpointer data)
{
  PtLoop *loop;

  GST_OBJECT_LOCK (ELEMENT (s));
  loop = s->loop;
  GST_OBJECT_UNLOCK (ELEMENT (s));
  if (loop == NULL)
    return FALSE;
  pt_loop_invoke_sync (loop, func, data);
  return TRUE;
}

void
pt_session_append_children_stats (PtSession * s, GValue * list)
{
  if (s->children)
    pt_fanout_append_stats (s->children, list);
}
