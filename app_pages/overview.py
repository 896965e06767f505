"""Overview: a first screen that shows diffusion at work (the shipped moons run's reverse process, played in the
browser), one sentence of what this is and a card per phase; below it, the DDPM equations with the slips they are
often written with corrected, and the notation."""

from pathlib import Path

import streamlit as st

from ui.views import pages

THUMBNAILS = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "thumbs"   # written by the browser test
THUMB_WIDTH = 72               # pixels: six cards and the picture above the fold of a laptop's window

st.title("Diffusion Explorer")
st.markdown("**Watch a diffusion model turn noise into data, train your own on 2D points and MNIST on this machine, "
            "and read every result against what a perfect model would score.**")


@st.cache_resource(show_spinner=False)
def reverse_figure():
    """The shipped moons run's reverse process as a Plotly animation, built once per server process: every
    visitor's first page shows the same one, and building it (Plotly validates each of its frames) cost the server
    0.4 s of CPU per Overview. Read-only: st.plotly_chart copies it."""
    from diffusion.sampling.sampler_config import SamplerConfig
    from ui.jobs import shipped_runs
    from ui.toy2d import animate2d, data2d
    run = shipped_runs.shipped_run("moons")
    traj = data2d.trajectory(shipped_runs.shipped_key("moons"), run, SamplerConfig("ddim", steps=50))
    figure = animate2d.reverse(traj, 24, data2d.density("moons"), duration=100, height=420)
    figure.update_layout(showlegend=False, title_text="Noise → moons (press Play)")   # the caption says the rest
    return figure


def moving_picture() -> None:
    """The shipped moons run's reverse process (it plays in the browser: press Play)."""
    with st.spinner("Loading PyTorch and the shipped moons run (once per server start)..."):
        from ui.jobs import shipped_runs
        if not shipped_runs.has_shipped("moons"):
            st.info("The shipped moons run is not in this copy (checkpoints/): train one on Phase 1.")
            return
        figure = reverse_figure()
    st.plotly_chart(figure, key="overview_reverse")
    st.caption("300 points of pure noise x_T (blue) become the two moons (their density: the contours) under the "
               "shipped model, DDIM in 50 steps; 24 paths in grey, red where their points are now. Press Play. "
               "Phase 1 trains one like it in seconds.")


def phase_card(phase: pages.PageInfo) -> None:
    """A card: the page's thumbnail (its first result) beside the link to it."""
    with st.container(border=True):
        thumb = THUMBNAILS / f"{Path(phase.path).stem}.png"
        picture, link = st.columns([1, 3], vertical_alignment="center", gap="small")
        if thumb.is_file():
            picture.image(str(thumb), width=THUMB_WIDTH)
        link.page_link(phase.path, label=phase.title)          # no icon: the whole name fits at 1,024 px


picture, cards = st.columns([1, 1.1], gap="medium")
with picture:
    moving_picture()
with cards:
    st.caption("**Start here**, or go to any phase:")
    for phase in pages.phases():
        phase_card(phase)

st.header("What each page does")
for phase in pages.phases():
    st.page_link(phase.path, label=phase.title, icon=phase.icon)
    st.caption(phase.summary)

st.markdown(
    "A diffusion model learns to **undo noise**. The *forward process* blurs data into Gaussian noise in $T$ "
    "small random steps; a network is trained to predict, from a noisy $x_t$, the noise that was added (or "
    "equivalently the clean $x_0$). The *reverse process* starts from pure noise $x_T \\sim \\mathcal N(0, I)$ "
    "and applies the network step by step to reach a new sample. Everything here is measured: distances to the "
    "true distribution, always read against the floor a perfect model would reach with the same sample size."
)

st.info(
    "**Notation.** We write what Ho et al. (2020) write: $\\alpha_t = 1 - \\beta_t$ and "
    "$\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s$. Some course notes call these $\\sigma_t$ and "
    "$\\bar\\sigma_t$; here $\\sigma$ is kept for noise levels "
    "(sampling standard deviations, and EDM's $\\sigma = \\sqrt{(1-\\bar\\alpha)/\\bar\\alpha}$).",
    icon=":material/translate:",
)

st.header("The DDPM equations (Ho et al. 2020)")
st.caption("Under each equation: the slip it is most often written with, and why the version here is right. The "
           "package implements these versions, and its tests pin them against the papers.")
st.markdown("**Forward process.** One step adds a little Gaussian noise; it is stochastic, but every marginal "
            "is known in closed form (eq. 4), which is what makes training simulation-free:")
st.latex(r"q(x_t \mid x_{t-1}) = \mathcal N\!\left(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\right),\qquad "
         r"\alpha_t = 1-\beta_t,\qquad \bar\alpha_t = \prod_{s=1}^{t}\alpha_s")
st.latex(r"x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad "
         r"\varepsilon\sim\mathcal N(0, I)")
st.caption("ᾱ_t, not α_t: the noise of all t steps accumulates, so the signal left is the product of every α_s. "
           "With the single-step α_t (close to 1), x_t would still be almost x_0 at every t.")

st.markdown("**Reverse step.** The network $\\varepsilon_\\theta$ predicts the noise; the mean of "
            "$p_\\theta(x_{t-1}\\mid x_t)$ is the posterior mean with that prediction plugged in (eq. 11):")
st.latex(r"\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\left(x_t - "
         r"\frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\right),\qquad "
         r"\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t")
st.caption("The factor 1/√α_t multiplies both terms, and the predicted noise is weighted by β_t / √(1−ᾱ_t): "
           "ε_θ estimates all the noise in x_t, of standard deviation √(1−ᾱ_t), of which one step removes a share "
           "β_t.")

left, right = st.columns(2)
with left:
    st.markdown("**Algorithm 1: training**")
    st.markdown(
        "1. **repeat**\n"
        "2. $\\quad x_0 \\sim q(x_0)$, $\\ t \\sim \\mathcal U\\{1,\\dots,T\\}$, "
        "$\\ \\varepsilon \\sim \\mathcal N(0, I)$ — drawn afresh at every step\n"
        "3. $\\quad$ gradient step on "
        "$\\nabla_\\theta \\big\\| \\varepsilon - \\varepsilon_\\theta(\\sqrt{\\bar\\alpha_t}x_0 + "
        "\\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon,\\ t) \\big\\|^2$\n"
        "4. **until** the step budget is spent (the loss is noisy: watch sample metrics)"
    )
    st.caption("x_0, t and ε are drawn afresh at every step (inside the loop), and training stops on a budget: "
               "the loss is an average over noise levels and stays noisy, so a threshold is a poor stopping rule.")
with right:
    st.markdown("**Algorithm 2: sampling**")
    st.markdown(
        "1. $x_T \\sim \\mathcal N(0, I)$\n"
        "2. **for** $t = T, \\dots, 1$: $\\ z \\sim \\mathcal N(0, I)$ if $t > 1$, else $z = 0$\n"
        "3. $\\quad x_{t-1} = \\frac{1}{\\sqrt{\\alpha_t}}\\Big(x_t - \\frac{1-\\alpha_t}{\\sqrt{1-\\bar\\alpha_t}}"
        "\\,\\varepsilon_\\theta(x_t, t)\\Big) + \\sigma_t z$, $\\ \\sigma_t^2 = \\beta_t$ or $\\tilde\\beta_t$\n"
        "4. **return** $x_0$"
    )
    st.caption("The same coefficients as the reverse step above, and the added noise is σ_t z with σ_t a standard "
               "deviation (σ_t² = β_t or β̃_t): β_t z would add far too little noise.")

st.markdown("**DDIM** (Song et al. 2021, eq. 12) reuses the same network with fewer steps: with "
            "$\\hat x_0$ the prediction of $x_0$ and $\\eta \\in [0, 1]$ ($\\eta = 0$: deterministic),")
st.latex(r"x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\;"
         r"\varepsilon_\theta(x_t, t) + \sigma_t z,")          # two lines: one fits a 1,024 px window
st.latex(r"\sigma_t = \eta\sqrt{\frac{1-\bar\alpha_{t-1}}"
         r"{1-\bar\alpha_t}}\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t-1}}}")
