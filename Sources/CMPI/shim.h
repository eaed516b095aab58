#ifndef CAUSAL_TUNE_MPI_SHIM_H
#define CAUSAL_TUNE_MPI_SHIM_H
#include <mpi.h>

/* Open MPI's handles are macros over addresses of global structs; Swift cannot import
   them, so each is wrapped in a static inline function. */
static inline MPI_Comm ct_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype ct_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype ct_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype ct_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype ct_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Op ct_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op ct_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op ct_mpi_min(void) { return MPI_MIN; }
static inline void *ct_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int ct_mpi_success(void) { return MPI_SUCCESS; }
static inline MPI_Request ct_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *ct_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int ct_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline MPI_Datatype ct_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype ct_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Info ct_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int ct_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
#endif
