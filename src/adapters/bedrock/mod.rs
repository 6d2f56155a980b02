//! AWS Bedrock Runtime: Claude and Llama 3.1 over InvokeModel, every model over Converse.

pub mod converse;
pub mod llama;
