/* The connection settings both elements share (gst/pt-settings.c), on an
 * object of the test's own: defaults, properties, link configuration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>

#include "gst/pt-settings.h"

#define PROP_FIRST 3            /* not 1: the offsets must be honoured */

#define PT_TYPE_TEST_SETTINGS (pt_test_settings_get_type ())
G_DECLARE_FINAL_TYPE (PtTestSettings, pt_test_settings, PT, TEST_SETTINGS, GstObject)

struct _PtTestSettings {
  GstObject parent;
  PtSettings settings;
};

G_DEFINE_TYPE (PtTestSettings, pt_test_settings, GST_TYPE_OBJECT)

static void
pt_test_settings_set_property (GObject *object, guint prop_id, const GValue *value,
    GParamSpec *pspec)
{
  PtTestSettings *self = PT_TEST_SETTINGS (object);
  gboolean ok;

  GST_OBJECT_LOCK (self);
  ok = pt_settings_set_property (&self->settings, PROP_FIRST, prop_id, value);
  GST_OBJECT_UNLOCK (self);
  if (!ok)
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
pt_test_settings_get_property (GObject *object, guint prop_id, GValue *value,
    GParamSpec *pspec)
{
  PtTestSettings *self = PT_TEST_SETTINGS (object);
  gboolean ok;

  GST_OBJECT_LOCK (self);
  ok = pt_settings_get_property (&self->settings, PROP_FIRST, prop_id, value);
  GST_OBJECT_UNLOCK (self);
  if (!ok)
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
pt_test_settings_finalize (GObject *object)
{
  pt_settings_clear (&PT_TEST_SETTINGS (object)->settings);
  G_OBJECT_CLASS (pt_test_settings_parent_class)->finalize (object);
}

static void
pt_test_settings_class_init (PtTestSettingsClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->set_property = pt_test_settings_set_property;
  gobject_class->get_property = pt_test_settings_get_property;
  gobject_class->finalize = pt_test_settings_finalize;
  pt_settings_install_properties (gobject_class, PROP_FIRST, "the tree blurb",
      "the client blurb");
}

static void
pt_test_settings_init (PtTestSettings *self)
{
  pt_settings_init (&self->settings);
}

static const gchar *const names[] = { "server", "tree-id", "client-id", "local-addresses",
  "stun-server", "turn-server", "token", "tls-ca"
};

GST_START_TEST (test_report_interval)
{
  PtTestSettings *t = g_object_new (PT_TYPE_TEST_SETTINGS, NULL);
  GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (t), "report-interval");
  guint v = 0;

  fail_unless (pspec != NULL);
  /* installed last, after the string ones */
  fail_unless_equals_int (pspec->param_id, PROP_FIRST + PT_SETTINGS_PROP_REPORT_INTERVAL);
  fail_unless (pspec->flags & GST_PARAM_MUTABLE_READY);
  g_object_get (t, "report-interval", &v, NULL);
  fail_unless_equals_int (v, PT_SETTINGS_DEFAULT_REPORT_INTERVAL);
  g_object_set (t, "report-interval", 0, NULL);
  fail_unless_equals_int (t->settings.report_interval, 0);
  g_object_set (t, "report-interval", 5, NULL);
  g_object_get (t, "report-interval", &v, NULL);
  fail_unless_equals_int (v, 5);
  gst_object_unref (t);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  PtTestSettings *t = g_object_new (PT_TYPE_TEST_SETTINGS, NULL);
  GObjectClass *klass = G_OBJECT_GET_CLASS (t);

  /* the string properties; report-interval (the last) has its own test */
  G_STATIC_ASSERT (G_N_ELEMENTS (names) + 1 == PT_SETTINGS_N_PROPS);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GParamSpec *pspec = g_object_class_find_property (klass, names[i]);
    g_autofree gchar *v = NULL;
    g_autofree gchar *set = g_strdup_printf ("value %u", i);

    fail_unless (pspec != NULL, "%s missing", names[i]);
    /* installed in order, from the first id on */
    fail_unless_equals_int (pspec->param_id, PROP_FIRST + i);
    fail_unless (pspec->flags & GST_PARAM_MUTABLE_READY, "%s", names[i]);
    fail_unless (pspec->flags & G_PARAM_READWRITE, "%s", names[i]);
    /* defaults: a server, nothing else */
    g_object_get (t, names[i], &v, NULL);
    if (i == 0) {
      fail_unless_equals_string (v, PT_SETTINGS_DEFAULT_SERVER);
    } else {
      fail_unless (v == NULL, "%s is %s", names[i], v);
    }
    g_clear_pointer (&v, g_free);
    g_object_set (t, names[i], set, NULL);
    g_object_get (t, names[i], &v, NULL);
    fail_unless_equals_string (v, set);
    g_clear_pointer (&v, g_free);
    g_object_set (t, names[i], NULL, NULL);
    g_object_get (t, names[i], &v, NULL);
    fail_unless (v == NULL);
  }
  fail_unless_equals_string (g_param_spec_get_blurb (g_object_class_find_property (klass,
              "tree-id")), "the tree blurb");
  fail_unless_equals_string (g_param_spec_get_blurb (g_object_class_find_property (klass,
              "client-id")), "the client blurb");
  /* the other fields are untouched by one's change */
  g_object_set (t, "client-id", "c", NULL);
  fail_unless_equals_string (t->settings.client_id, "c");
  fail_unless (t->settings.tree_id == NULL);
  gst_object_unref (t);
}

GST_END_TEST;

GST_START_TEST (test_not_a_setting)
{
  PtSettings s;
  GValue v = G_VALUE_INIT;

  pt_settings_init (&s);
  g_value_init (&v, G_TYPE_STRING);
  g_value_set_string (&v, "x");
  fail_if (pt_settings_set_property (&s, PROP_FIRST, PROP_FIRST - 1, &v));
  fail_if (pt_settings_set_property (&s, PROP_FIRST, 0, &v));
  fail_if (pt_settings_set_property (&s, PROP_FIRST, PROP_FIRST + PT_SETTINGS_N_PROPS, &v));
  fail_if (pt_settings_get_property (&s, PROP_FIRST, PROP_FIRST + PT_SETTINGS_N_PROPS, &v));
  fail_unless (pt_settings_set_property (&s, PROP_FIRST,
          PROP_FIRST + PT_SETTINGS_PROP_TREE_ID, &v));
  fail_unless_equals_string (s.tree_id, "x");
  fail_unless_equals_string (s.server, PT_SETTINGS_DEFAULT_SERVER);
  g_value_unset (&v);
  pt_settings_clear (&s);
  fail_unless (s.server == NULL && s.tree_id == NULL);
  pt_settings_clear (&s);       /* twice is fine */
}

GST_END_TEST;

GST_START_TEST (test_link_config)
{
  PtSettings s;
  PtLinkConfig config;

  pt_settings_init (&s);
  pt_link_config_init (&config);
  config.latency_ms = 500;
  s.local_addresses = g_strdup (" 127.0.0.1 , ,10.0.0.2,");
  s.stun_server = g_strdup ("stun://192.0.2.9:3478");
  s.turn_server = g_strdup ("turn://u:p@192.0.2.9:3478");
  pt_settings_fill_link_config (&s, &config);
  /* reset to the default latency: the element sets its own afterwards */
  fail_unless_equals_int (config.latency_ms, PT_LINK_DEFAULT_LATENCY_MS);
  fail_unless (config.local_addresses != NULL);
  fail_unless_equals_int (g_strv_length (config.local_addresses), 2);
  fail_unless_equals_string (config.local_addresses[0], "127.0.0.1");
  fail_unless_equals_string (config.local_addresses[1], "10.0.0.2");
  fail_unless_equals_string (config.stun_server, "stun://192.0.2.9:3478");
  fail_unless_equals_string (config.turn_server, "turn://u:p@192.0.2.9:3478");

  /* filled again: the old values go, empty lists are none */
  g_free (s.local_addresses);
  s.local_addresses = g_strdup (" , ");
  g_clear_pointer (&s.stun_server, g_free);
  pt_settings_fill_link_config (&s, &config);
  fail_unless (config.local_addresses == NULL);
  fail_unless (config.stun_server == NULL);
  fail_unless_equals_string (config.turn_server, "turn://u:p@192.0.2.9:3478");

  g_clear_pointer (&s.local_addresses, g_free);
  pt_settings_fill_link_config (&s, &config);
  fail_unless (config.local_addresses == NULL);
  pt_link_config_clear (&config);
  pt_settings_clear (&s);
}

GST_END_TEST;

static Suite *
peertree_settings_suite (void)
{
  Suite *s = suite_create ("peertree-settings");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_report_interval);
  tcase_add_test (tc, test_not_a_setting);
  tcase_add_test (tc, test_link_config);
  return s;
}

GST_CHECK_MAIN (peertree_settings);
