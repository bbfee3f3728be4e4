"""The demo world model: 4M end to end on the procedural world, trained and run on a laptop CPU.

`open4m demo` runs :func:`open4m.demo.run.run_demo`: fresh test scenes through the shipped world model
(`open4m/assets/world64`, an ordinary open4m model folder) with `open4m.eval.runner` (every prediction
through `open4m.generation.Pipeline`), drawn as labelled PNGs next to the ground truth. `open4m demo
--train` runs the world recipe, `open4m.recipes.world`. The world's model form is library code in
`open4m.data.synthetic.world`; the world as a source is `open4m.sources.world`.
"""
