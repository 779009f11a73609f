# MMF imports this folder as the user directory (env.user_dir in the configs here);
# importing the plugin registers its models, builders and trainers.
import mla_plugin  # noqa: F401
