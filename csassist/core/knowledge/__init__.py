"""The knowledge base: reading kb/, chunking, embedding, the FAISS index and search."""
