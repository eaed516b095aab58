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
#endif
