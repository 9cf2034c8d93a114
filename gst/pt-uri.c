/* peertree GStreamer elements — the peertree:// URI handler of both elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-uri.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (pt_uri_debug);
#define GST_CAT_DEFAULT pt_uri_debug

#define PT_URI_SCHEME "peertree"
/* the same over TLS: the server is wss:// (a private CA: tls-ca=FILE) */
#define PT_URI_SCHEME_TLS "peertrees"

G_DEFINE_QUARK (pt-uri-spec, pt_uri_spec);

static const PtUriSpec *
get_spec (GType type)
{
  const PtUriSpec *spec = NULL;

  for (; spec == NULL && type; type = g_type_parent (type))
    spec = g_type_get_qdata (type, pt_uri_spec_quark ());
  return spec;
}

static const gchar *
element_kind (GstElement * element)
{
  GstElementFactory *f = gst_element_get_factory (element);

  return f ? GST_OBJECT_NAME (f) : G_OBJECT_TYPE_NAME (element);
}

static GstURIType
uri_get_type (GType type)
{
  return get_spec (type)->type;
}

static const gchar *const *
uri_get_protocols (GType type)
{
  static const gchar *protocols[] = { PT_URI_SCHEME, PT_URI_SCHEME_TLS, NULL };

  (void) type;
  return protocols;
}

/* @value of property @pspec as it goes into a query, or NULL to leave it
 * out (unset, empty or at its default). Not escaped. */
static gchar *
query_value (GObject * object, GParamSpec * pspec)
{
  GValue v = G_VALUE_INIT;
  gchar *ret = NULL;

  g_value_init (&v, pspec->value_type);
  g_object_get_property (object, pspec->name, &v);
  if (g_param_value_defaults (pspec, &v)) {
    /* left out */
  } else if (G_VALUE_HOLDS_STRING (&v)) {
    const gchar *s = g_value_get_string (&v);

    if (s && *s)
      ret = g_strdup (s);
  } else if (G_VALUE_HOLDS_ENUM (&v)) {
    GEnumValue *e = g_enum_get_value (G_PARAM_SPEC_ENUM (pspec)->enum_class,
        g_value_get_enum (&v));

    ret = e ? g_strdup (e->value_nick) : NULL;
  } else {
    ret = gst_value_serialize (&v);
  }
  g_value_unset (&v);
  return ret;
}

/* Credentials: accepted in a URI's query, never printed in one (get_uri
 * output ends up in logs and pipeline dumps). */
static gboolean
is_credential (const gchar * name)
{
  return g_str_equal (name, "token") || g_str_equal (name, "turn-server") ||
      g_str_equal (name, "secret");
}

static gchar *
uri_get_uri (GstURIHandler * handler)
{
  GObject *object = G_OBJECT (handler);
  const PtUriSpec *spec = get_spec (G_OBJECT_TYPE (object));
  g_autofree gchar *server = NULL;
  g_autofree gchar *tree = NULL;
  g_autoptr (GUri) parsed = NULL;
  g_autoptr (GString) query = g_string_new (NULL);
  g_autofree gchar *escaped_tree = NULL;
  g_autofree gchar *path = NULL;

  g_object_get (object, "server", &server, "tree-id", &tree, NULL);
  parsed = server ? g_uri_parse (server, G_URI_FLAGS_NONE, NULL) : NULL;
  /* a viewer's URI names the tree it joins; a source's may leave it to the
   * server */
  if (parsed == NULL || (tree == NULL && spec->type == GST_URI_SRC))
    return NULL;

  for (guint i = 0; spec->query_properties[i]; i++) {
    GParamSpec *pspec = is_credential (spec->query_properties[i]) ? NULL :
        g_object_class_find_property (G_OBJECT_GET_CLASS (object), spec->query_properties[i]);
    g_autofree gchar *v = pspec ? query_value (object, pspec) : NULL;
    g_autofree gchar *escaped = v ? g_uri_escape_string (v, ",", FALSE) : NULL;

    if (escaped)
      g_string_append_printf (query, "%s%s=%s", query->len ? "&" : "", pspec->name, escaped);
  }
  escaped_tree = g_uri_escape_string (tree ? tree : "", NULL, FALSE);
  path = g_strconcat ("/", escaped_tree, NULL);
  return g_uri_join (G_URI_FLAGS_ENCODED,
      g_ascii_strcasecmp (g_uri_get_scheme (parsed), "wss") == 0 ? PT_URI_SCHEME_TLS :
      PT_URI_SCHEME, NULL, g_uri_get_host (parsed),
      g_uri_get_port (parsed), path, query->len ? query->str : NULL, NULL);
}

/* The property a query key may set: a writable one of the element's own,
 * other than those the rest of the URI sets. NULL: the key is ignored. */
static GParamSpec *
query_property (GObject * object, const gchar * key)
{
  GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (object), key);

  if (pspec == NULL || pspec->owner_type != G_OBJECT_TYPE (object) ||
      !(pspec->flags & G_PARAM_WRITABLE) || (pspec->flags & G_PARAM_CONSTRUCT_ONLY) ||
      g_str_equal (pspec->name, "uri") || g_str_equal (pspec->name, "server") ||
      g_str_equal (pspec->name, "tree-id"))
    return NULL;
  return pspec;
}

static gboolean
uri_set_uri (GstURIHandler * handler, const gchar * uri, GError ** error)
{
  GstElement *element = GST_ELEMENT (handler);
  GObject *object = G_OBJECT (handler);
  const PtUriSpec *spec = get_spec (G_OBJECT_TYPE (object));
  g_autoptr (GstUri) parsed = NULL;
  g_autoptr (GHashTable) query = NULL;
  g_autoptr (GPtrArray) keys = g_ptr_array_new ();
  g_autofree gchar *path = NULL;
  g_autofree gchar *server = NULL;
  const gchar *tree, *host, *scheme;
  GHashTableIter it;
  gpointer key, value;
  gint port;

  if (GST_STATE (element) >= GST_STATE_PAUSED) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_STATE,
        "Changing the URI of %s in PAUSED or PLAYING is not supported",
        element_kind (element));
    return FALSE;
  }
  parsed = uri ? gst_uri_from_string (uri) : NULL;
  if (parsed == NULL) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "Invalid URI '%s'",
        uri ? uri : "(null)");
    return FALSE;
  }
  host = gst_uri_get_host (parsed);
  path = gst_uri_get_path (parsed);
  tree = path ? path : "";
  while (*tree == '/')
    tree++;
  scheme = gst_uri_get_scheme (parsed);
  if ((g_ascii_strcasecmp (scheme, PT_URI_SCHEME) != 0 &&
          g_ascii_strcasecmp (scheme, PT_URI_SCHEME_TLS) != 0) || host == NULL
      || *host == '\0' || strchr (tree, '/') || (*tree == '\0' && spec->type == GST_URI_SRC)) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
        "Expected peertree://HOST:PORT/TREE-ID or peertrees://…, got '%s'", uri);
    return FALSE;
  }
  port = gst_uri_get_port (parsed) == GST_URI_NO_PORT ? -1 : (gint) gst_uri_get_port (parsed);
  server = g_uri_join (G_URI_FLAGS_NONE,
      g_ascii_strcasecmp (scheme, PT_URI_SCHEME_TLS) == 0 ? "wss" : "ws", NULL, host, port, "",
      NULL, NULL);

  /* every query value is checked before anything is set: a bad URI
   * changes nothing */
  query = gst_uri_get_query_table (parsed);
  if (query) {
    g_hash_table_iter_init (&it, query);
    while (g_hash_table_iter_next (&it, &key, &value)) {
      GParamSpec *pspec = query_property (object, key);
      GValue v = G_VALUE_INIT;
      gboolean ok;

      if (pspec == NULL) {
        GST_WARNING_OBJECT (element, "URI query parameter '%s' ignored: %s has no such "
            "setting", (const gchar *) key, element_kind (element));
        continue;
      }
      g_value_init (&v, pspec->value_type);
      ok = value && gst_value_deserialize_with_pspec (&v, value, pspec) &&
          !g_param_value_validate (pspec, &v);
      g_value_unset (&v);
      if (!ok) {
        g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
            "Invalid value '%s' for %s in '%s'", value ? (const gchar *) value : "",
            pspec->name, uri);
        return FALSE;
      }
      g_ptr_array_add (keys, key);
    }
  }

  g_object_freeze_notify (object);
  g_object_set (object, "server", server, "tree-id", *tree ? tree : NULL, NULL);
  for (guint i = 0; i < keys->len; i++) {
    const gchar *k = g_ptr_array_index (keys, i);

    GST_DEBUG_OBJECT (element, "%s=%s from the URI", k,
        (const gchar *) g_hash_table_lookup (query, k));
    gst_util_set_object_arg (object, k, g_hash_table_lookup (query, k));
  }
  g_object_thaw_notify (object);
  return TRUE;
}

void
pt_uri_handler_init (gpointer iface, const PtUriSpec * spec)
{
  GstURIHandlerInterface *i = iface;
  GType type = ((GTypeInterface *) iface)->g_instance_type;

  GST_DEBUG_CATEGORY_INIT (pt_uri_debug, "pturi", 0, "peertree:// URI handler");
  g_type_set_qdata (type, pt_uri_spec_quark (), (gpointer) spec);
  i->get_type = uri_get_type;
  i->get_protocols = uri_get_protocols;
  i->get_uri = uri_get_uri;
  i->set_uri = uri_set_uri;
}
