/* peertree GStreamer plugin: peertreesink, peertreesrc
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstpeertreeelements.h"

#ifndef VERSION
#define VERSION "0.1.0"
#endif
#ifndef PACKAGE
#define PACKAGE "peertree"
#endif
#ifndef GST_PACKAGE_NAME
#define GST_PACKAGE_NAME "peertree"
#endif
#ifndef GST_PACKAGE_ORIGIN
#define GST_PACKAGE_ORIGIN "https://example.invalid/peertree"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (peertreesink, plugin);
  ret |= GST_ELEMENT_REGISTER (peertreesrc, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, peertree,
    "Live broadcast over a k-ary tree of WebRTC peers that relay to each other",
    plugin_init, VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
