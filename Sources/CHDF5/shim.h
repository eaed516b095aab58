#ifndef CAUSAL_TUNE_HDF5_SHIM_H
#define CAUSAL_TUNE_HDF5_SHIM_H
#include <hdf5.h>

/* HDF5's property-list and type handles are macros that call H5open() and read globals;
   Swift cannot import them, so each is wrapped in a static inline function. */
static inline hid_t ct_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t ct_h5s_all(void) { return H5S_ALL; }
static inline hid_t ct_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t ct_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t ct_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t ct_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t ct_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t ct_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t ct_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t ct_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline unsigned ct_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned ct_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned ct_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline hsize_t ct_h5s_unlimited(void) { return H5S_UNLIMITED; }
/* Silence HDF5's own error stack printing: we report one clear line ourselves. */
static inline void ct_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
/* File types (explicit little-endian on disk) and the remaining native types. */
static inline hid_t ct_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t ct_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t ct_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t ct_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t ct_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t ct_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t ct_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline size_t ct_h5t_variable(void) { return H5T_VARIABLE; }
/* A variable-length UTF-8 string type (h5py reads it as `str`); close with H5Tclose. */
static inline hid_t ct_h5t_vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) { H5Tclose(t); return -1; }
    return t;
}
/* The number of attributes of an object (H5Oget_info's signature differs across versions). */
static inline long long ct_h5_num_attrs(hid_t obj) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info3(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#elif H5_VERSION_GE(1, 10, 3)
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_NUM_ATTRS) < 0) return -1;
#else
    H5O_info_t info;
    if (H5Oget_info(obj, &info) < 0) return -1;
#endif
    return (long long)info.num_attrs;
}
/* Frees the strings HDF5 allocated while reading variable-length data. */
static inline herr_t ct_h5_vlen_reclaim(hid_t type, hid_t space, void *buf) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Treclaim(type, space, H5P_DEFAULT, buf);
#else
    return H5Dvlen_reclaim(type, space, H5P_DEFAULT, buf);
#endif
}
#endif
