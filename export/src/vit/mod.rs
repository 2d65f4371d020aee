//! The timm-style ViT encoder used by PatchMix: configuration and presets, seedable
//! initialisation and the forward pass as graph IR.

mod config;
mod forward;
mod init;
mod layout;
mod resize;

pub use config::{VitConfig, VitConfigError, VitPreset};
pub use forward::{
    EncoderOutputs, ForwardOptions, add_initializers, encoder_forward, encoder_graph, layer_norm,
};
pub use init::{RadiusDraw, init_weights, normal, normal_with, trunc_normal, uniform};
pub use layout::timm_vit_shapes;
pub use resize::{bicubic_matrix, grid_resize_matrix, resized_pos_embed};
