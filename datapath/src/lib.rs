//! AF_XDP datapath: XDP program and loader, UMEM, rings, and a smoltcp `Device` over them.
