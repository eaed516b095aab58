# Sourced by the launch scripts: the environment every causal-tune process wants.
# Open MPI refuses to run as root without these (containers and CI run as root).
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Keep Open MPI from probing network interfaces that containers do not have.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
