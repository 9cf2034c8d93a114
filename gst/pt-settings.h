/* peertree GStreamer elements — connection settings shared by both elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The properties server, tree-id, client-id, local-addresses, stun-server,
 * turn-server, token and tls-ca, the same in peertreesink and peertreesrc. An element embeds a
 * PtSettings, reserves PT_SETTINGS_N_PROPS consecutive property ids from
 * @first_prop_id on, and forwards its set_property/get_property to
 * pt_settings_set_property()/pt_settings_get_property(). The fields are
 * guarded by the element's object lock.
 */
#pragma once

#include <gst/gst.h>

#include "pt-link.h"

G_BEGIN_DECLS

#define PT_SETTINGS_DEFAULT_SERVER "ws://127.0.0.1:8645"
#define PT_SETTINGS_DEFAULT_REPORT_INTERVAL 2   /* s between link reports */

/* Offsets from an element's first settings property id, in install order. */
enum {
  PT_SETTINGS_PROP_SERVER,
  PT_SETTINGS_PROP_TREE_ID,
  PT_SETTINGS_PROP_CLIENT_ID,
  PT_SETTINGS_PROP_LOCAL_ADDRESSES,
  PT_SETTINGS_PROP_STUN_SERVER,
  PT_SETTINGS_PROP_TURN_SERVER,
  PT_SETTINGS_PROP_TOKEN,
  PT_SETTINGS_PROP_TLS_CA,
  PT_SETTINGS_PROP_REPORT_INTERVAL,
  PT_SETTINGS_N_PROPS
};

typedef struct {
  gchar *server;
  gchar *tree_id;
  gchar *client_id;
  gchar *local_addresses;
  gchar *stun_server;
  gchar *turn_server;
  gchar *token;
  gchar *tls_ca;
  guint report_interval;        /* s between reports to the server; 0: none */
} PtSettings;

/* server = PT_SETTINGS_DEFAULT_SERVER, the others NULL. */
void pt_settings_init (PtSettings *settings);
void pt_settings_clear (PtSettings *settings);

/* Installs the nine properties with ids @first_prop_id… (changeable in NULL
 * or READY). tree-id and client-id mean something slightly different in
 * each element: their blurbs are the element's. */
void pt_settings_install_properties (GObjectClass *klass, guint first_prop_id,
    const gchar *tree_id_blurb, const gchar *client_id_blurb);

/* With the object lock. FALSE if @prop_id is not a settings property. */
gboolean pt_settings_set_property (PtSettings *settings, guint first_prop_id,
    guint prop_id, const GValue *value);
gboolean pt_settings_get_property (const PtSettings *settings, guint first_prop_id,
    guint prop_id, GValue *value);

/* With the object lock: resets @config (latency_ms to its default) and
 * fills its ICE settings from @settings. */
void pt_settings_fill_link_config (const PtSettings *settings, PtLinkConfig *config);

G_END_DECLS
