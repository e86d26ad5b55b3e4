# The enclave image nitro-cli turns into an EIF: the root file system tar from the build
# stage (one static binary, fixed owner, mode and mtime) and nothing else. The context is
# the directory holding rootfs.tar.
FROM scratch
ADD rootfs.tar /
# The enclave has no network and no credentials: it listens on vsock for the parent's proxy
# (port 5000, any CID: nitro-cli assigns the enclave's) and talks to the real NSM.
CMD ["/strongroom-enclave", "--listen", "vsock:any:5000", "--nsm", "nitro", "--log-format", "json"]
