# MMF imports this folder as the user directory (env.user_dir in the configs here):
# it registers the plugin's models, dataset builders and trainers.
import mla_plugin

mla_plugin.register()
