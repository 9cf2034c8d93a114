/* peertree GStreamer elements — helpers shared by both elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include "gstpeertreeelements.h"
#include "peertree/peertree-client.h"

#include <gst/pbutils/missing-plugins.h>

#include "common/pt-element-packages.h"

PtCall *
pt_call_new (gpointer element, GCancellable * cancellable)
{
  PtCall *call = g_new0 (PtCall, 1);

  call->self = gst_object_ref (element);
  call->cancellable = g_object_ref (cancellable);
  return call;
}

gboolean
pt_call_stopped (PtCall * call)
{
  return g_cancellable_is_cancelled (call->cancellable);
}

void
pt_call_free (PtCall * call)
{
  gst_object_unref (call->self);
  g_object_unref (call->cancellable);
  g_free (call);
}

void
pt_client_close (PeerTreeClient ** client, gpointer data, const gchar * tree_id)
{
  if (*client == NULL)
    return;
  g_signal_handlers_disconnect_by_data (*client, data);
  if (tree_id)
    peer_tree_client_leave_async (*client, tree_id, NULL, NULL, NULL);
  peer_tree_client_close (*client);
  g_clear_object (client);
}

void
pt_post_element_message (GstElement * element, const gchar * name,
    const gchar * first_field, ...)
{
  GstStructure *s;
  va_list ap;

  va_start (ap, first_field);
  s = gst_structure_new_valist (name, first_field, ap);
  va_end (ap);
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), s));
}

void
pt_post_client_error (GstElement * element, const GError * error, const gchar * what,
    const gchar * server, const gchar * tree_id)
{
  const gchar *detail = error ? error->message : "unknown error";

  if (error && error->domain == PEER_TREE_ERROR) {
    switch (error->code) {
      case PEER_TREE_ERROR_TREE_NOT_FOUND:
        GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
            ("Tree \"%s\" does not exist on the peertree server %s.",
                tree_id ? tree_id : "", server), ("%s: %s", what, detail));
        return;
      case PEER_TREE_ERROR_TREE_EXISTS:
        GST_ELEMENT_ERROR (element, RESOURCE, BUSY,
            ("A tree named \"%s\" exists already on %s; choose another tree-id "
                "or leave it empty.", tree_id ? tree_id : "", server),
            ("%s: %s", what, detail));
        return;
      case PEER_TREE_ERROR_DUPLICATE_CLIENT_ID:
        GST_ELEMENT_ERROR (element, RESOURCE, BUSY,
            ("Another client with the same client-id is connected to %s.", server),
            ("%s: %s", what, detail));
        return;
      case PEER_TREE_ERROR_INVALID_ID:
        GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS,
            ("The server %s refused the tree-id or client-id as malformed.", server),
            ("%s: %s", what, detail));
        return;
      case PEER_TREE_ERROR_LIMIT:
        GST_ELEMENT_ERROR (element, RESOURCE, NO_SPACE_LEFT,
            ("The peertree server %s refused the request: a limit was reached.",
                server), ("%s: %s", what, detail));
        return;
      case PEER_TREE_ERROR_TIMEOUT:
      case PEER_TREE_ERROR_CLOSED:
        if (g_strcmp0 (what, "connect") == 0)
          break;                /* never connected: "could not reach" below */
        GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ_WRITE,
            ("Lost the connection to the peertree server %s.", server),
            ("%s: %s", what, detail));
        return;
      default:
        GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
            ("The peertree server %s refused the request (%s).", server, detail),
            ("%s", what));
        return;
    }
  }
  /* wss:// to a server whose certificate no trusted CA signed (libpeertree
   * says so in its message, peertree-client-connection.c) */
  if (strstr (detail, "certificate is not trusted")) {
    GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ_WRITE,
        ("The TLS certificate of the peertree server %s is not trusted: set tls-ca to the "
            "PEM file of the CA that signed it.", server), ("%s: %s", what, detail));
    return;
  }
  /* GIO / libsoup errors, or the client's own: connection refused,
   * unresolvable host, no answer, TLS… */
  GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ_WRITE,
      ("Could not reach the peertree server %s. Is it running, and is the "
          "server property right?", server), ("%s: %s", what, detail));
}


GstElement *
pt_make_element_for_caps (GstElementFactoryListType type, GstPadDirection direction,
    const GstCaps * caps)
{
  GList *all, *fit;
  GstElement *ret = NULL;

  all = gst_element_factory_list_get_elements (type, GST_RANK_MARGINAL);
  fit = gst_element_factory_list_filter (all, caps, direction, FALSE);
  fit = g_list_sort (fit, gst_plugin_feature_rank_compare_func);
  /* prefer a factory that takes every variant of @caps as it is: a plain
   * intersection would pick e.g. vp8alphadecodebin (codec-alpha=true only)
   * for plain VP8 */
  for (GList * l = fit; l && ret == NULL; l = l->next) {
    GstElementFactory *f = l->data;

    if (direction == GST_PAD_SINK ? gst_element_factory_can_sink_all_caps (f, caps) :
        gst_element_factory_can_src_all_caps (f, caps))
      ret = gst_element_factory_create (f, NULL);
  }
  for (GList * l = fit; l && ret == NULL; l = l->next)
    ret = gst_element_factory_create (GST_ELEMENT_FACTORY (l->data), NULL);
  gst_plugin_feature_list_free (fit);
  gst_plugin_feature_list_free (all);
  return ret;
}

const gchar *
pt_find_missing_element (const gchar * const *names)
{
  for (guint i = 0; names[i]; i++) {
    GstElementFactory *f = gst_element_factory_find (names[i]);

    if (f == NULL)
      return names[i];
    gst_object_unref (f);
  }
  return NULL;
}

gboolean
pt_check_missing_element (GstElement * element, const gchar * missing)
{
  if (missing == NULL)
    return TRUE;
  gst_element_post_message (element, gst_missing_element_message_new (element, missing));
  GST_ELEMENT_ERROR (element, CORE, MISSING_PLUGIN,
      ("The GStreamer element '%s' is missing: install the Debian package %s.", missing,
          pt_element_package (missing) ? pt_element_package (missing) :
          "that provides it"), (NULL));
  return FALSE;
}
