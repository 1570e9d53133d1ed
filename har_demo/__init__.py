"""har_demo: human activity recognition in still photos (sitting / standing / walking_running),
with a model zoo, a training runner, measurable explanations and a Gradio app."""

__version__ = "0.1.0"
