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
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an 8-bit single-channel PNG (greyscale, or palette → the raw palette indices,
 * bit depths < 8 unpacked) into a malloc'ed buffer of width*height bytes, which the caller
 * frees with ct_png_free. libpng's low-level API reports errors by longjmp, which Swift
 * cannot catch, so the whole read lives here. Returns 0 on success; on failure writes a
 * message into err (errlen bytes) and returns -1. Label maps must keep their indices,
 * which the simplified API (that converts palettes to colours) does not. */
static void ct_png_error_fn(png_structp png, png_const_charp msg) {
    char *err = (char *)png_get_error_ptr(png);
    if (err) { strncpy(err, msg, 255); err[255] = 0; }
    png_longjmp(png, 1);
}
static void ct_png_warning_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static inline int ct_png_read_index(const char *path, unsigned *width, unsigned *height,
                                    unsigned char **out, char *err /* 256 bytes */) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { strcpy(err, "cannot open file"); return -1; }
    unsigned char sig[8];
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(fp); strcpy(err, "not a PNG file"); return -1;
    }
    err[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, ct_png_error_fn, ct_png_warning_fn);
    if (!png) { fclose(fp); strcpy(err, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); fclose(fp); strcpy(err, "out of memory"); return -1; }
    unsigned char *volatile data = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        free(data); free((void *)rows);
        if (!err[0]) strcpy(err, "corrupt PNG");
        return -1;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if (ctype != PNG_COLOR_TYPE_GRAY && ctype != PNG_COLOR_TYPE_PALETTE) {
        png_destroy_read_struct(&png, &info, NULL); fclose(fp);
        strcpy(err, "label map is not a single-channel (greyscale or palette) PNG"); return -1;
    }
    if (depth == 16) {
        png_destroy_read_struct(&png, &info, NULL); fclose(fp);
        strcpy(err, "16-bit label maps are not supported (expected 8-bit ids)"); return -1;
    }
    if (depth < 8) png_set_packing(png);
    if (png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);
    data = (unsigned char *)malloc((size_t)w * h);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!data || !rows) { png_error(png, "out of memory"); }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = data + (size_t)y * w;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free((void *)rows);
    *width = w; *height = h; *out = data;
    return 0;
}
static inline void ct_png_free(void *p) { free(p); }
#endif
