#ifndef CAUSAL_TUNE_PNG_SHIM_H
#define CAUSAL_TUNE_PNG_SHIM_H
#include <png.h>

/* The simplified libpng API's format constants and size macros. */
static inline png_uint_32 ct_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline png_uint_32 ct_png_format_rgba(void) { return PNG_FORMAT_RGBA; }
static inline png_uint_32 ct_png_format_gray(void) { return PNG_FORMAT_GRAY; }
static inline int ct_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline int ct_png_image_failed(png_imagep image) { return PNG_IMAGE_FAILED(*image); }
static inline png_uint_32 ct_png_format_flag_colormap(void) { return PNG_FORMAT_FLAG_COLORMAP; }
static inline png_uint_32 ct_png_format_flag_color(void) { return PNG_FORMAT_FLAG_COLOR; }
static inline png_uint_32 ct_png_format_flag_alpha(void) { return PNG_FORMAT_FLAG_ALPHA; }
#endif
