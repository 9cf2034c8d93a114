/* peertree GStreamer elements — connection settings shared by both elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include "pt-settings.h"

void
pt_settings_init (PtSettings * settings)
{
  memset (settings, 0, sizeof (*settings));
  settings->server = g_strdup (PT_SETTINGS_DEFAULT_SERVER);
  settings->report_interval = PT_SETTINGS_DEFAULT_REPORT_INTERVAL;
}

void
pt_settings_clear (PtSettings * settings)
{
  g_clear_pointer (&settings->server, g_free);
  g_clear_pointer (&settings->tree_id, g_free);
  g_clear_pointer (&settings->client_id, g_free);
  g_clear_pointer (&settings->local_addresses, g_free);
  g_clear_pointer (&settings->stun_server, g_free);
  g_clear_pointer (&settings->turn_server, g_free);
  g_clear_pointer (&settings->token, g_free);
  g_clear_pointer (&settings->tls_ca, g_free);
}

void
pt_settings_install_properties (GObjectClass * klass, guint first_prop_id,
    const gchar * tree_id_blurb, const gchar * client_id_blurb)
{
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_SERVER,
      g_param_spec_string ("server", "Server",
          "WebSocket URL of the peertree signalling server (ws:// or wss://), or the URLs of "
          "several servers of one service (peertree-server --redis), comma-separated: the "
          "element moves to the next one when its server goes away",
          PT_SETTINGS_DEFAULT_SERVER, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_TREE_ID,
      g_param_spec_string ("tree-id", "Tree ID", tree_id_blurb, NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_CLIENT_ID,
      g_param_spec_string ("client-id", "Client ID", client_id_blurb, NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_LOCAL_ADDRESSES,
      g_param_spec_string ("local-addresses", "Local addresses",
          "Comma-separated local IP addresses ICE may use (e.g. "
          "\"192.168.1.10,127.0.0.1\"); empty uses every interface except loopback",
          NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_STUN_SERVER,
      g_param_spec_string ("stun-server", "STUN server",
          "STUN server for ICE as stun://host:port; empty for none", NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_TURN_SERVER,
      g_param_spec_string ("turn-server", "TURN server",
          "TURN relay for ICE as turn(s)://user:password@host:port; empty for none",
          NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_TOKEN,
      g_param_spec_string ("token", "Token",
          "Token (JWT) for a signalling server started with --auth-key; sent in hello at "
          "every connection. A credential: never part of the element's URI", NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_TLS_CA,
      g_param_spec_string ("tls-ca", "TLS CA file",
          "PEM file of the certificate authorities trusted for a wss:// server (a private "
          "CA); empty: the system's", NULL, rw));
  g_object_class_install_property (klass, first_prop_id + PT_SETTINGS_PROP_REPORT_INTERVAL,
      g_param_spec_uint ("report-interval", "Report interval",
          "Seconds between two reports of this member's link figures to the server (its "
          "dashboard and metrics: bitrate, loss, RTT, frames per second from the parent, "
          "children up); 0: none", 0, 3600, PT_SETTINGS_DEFAULT_REPORT_INTERVAL, rw));
}

/* The field of @settings behind property @prop_id, or NULL. */
static gchar **
settings_field (const PtSettings * settings, guint first_prop_id, guint prop_id)
{
  PtSettings *s = (PtSettings *) settings;

  if (prop_id < first_prop_id)
    return NULL;
  switch (prop_id - first_prop_id) {
    case PT_SETTINGS_PROP_SERVER:
      return &s->server;
    case PT_SETTINGS_PROP_TREE_ID:
      return &s->tree_id;
    case PT_SETTINGS_PROP_CLIENT_ID:
      return &s->client_id;
    case PT_SETTINGS_PROP_LOCAL_ADDRESSES:
      return &s->local_addresses;
    case PT_SETTINGS_PROP_STUN_SERVER:
      return &s->stun_server;
    case PT_SETTINGS_PROP_TURN_SERVER:
      return &s->turn_server;
    case PT_SETTINGS_PROP_TOKEN:
      return &s->token;
    case PT_SETTINGS_PROP_TLS_CA:
      return &s->tls_ca;
    default:
      return NULL;
  }
}

gboolean
pt_settings_set_property (PtSettings * settings, guint first_prop_id, guint prop_id,
    const GValue * value)
{
  gchar **field = settings_field (settings, first_prop_id, prop_id);

  if (prop_id == first_prop_id + PT_SETTINGS_PROP_REPORT_INTERVAL) {
    settings->report_interval = g_value_get_uint (value);
    return TRUE;
  }
  if (field == NULL)
    return FALSE;
  g_free (*field);
  *field = g_value_dup_string (value);
  return TRUE;
}

gboolean
pt_settings_get_property (const PtSettings * settings, guint first_prop_id, guint prop_id,
    GValue * value)
{
  gchar **field = settings_field (settings, first_prop_id, prop_id);

  if (prop_id == first_prop_id + PT_SETTINGS_PROP_REPORT_INTERVAL) {
    g_value_set_uint (value, settings->report_interval);
    return TRUE;
  }
  if (field == NULL)
    return FALSE;
  g_value_set_string (value, *field);
  return TRUE;
}

void
pt_settings_fill_link_config (const PtSettings * settings, PtLinkConfig * config)
{
  pt_link_config_clear (config);
  pt_link_config_init (config);
  config->local_addresses = pt_webrtc_parse_address_list (settings->local_addresses);
  config->stun_server = g_strdup (settings->stun_server);
  config->turn_server = g_strdup (settings->turn_server);
}
