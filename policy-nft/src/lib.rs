//! policy-nft
