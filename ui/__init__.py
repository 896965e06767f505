"""The Streamlit layer: cached loaders, the live training job, chart builders and error boxes. Pages call it;
it calls the diffusion package, which never imports streamlit."""
