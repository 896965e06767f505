"""Overview: what diffusion does, the DDPM equations with the slips they are often written with corrected, the
notation, and a link to each phase."""

import streamlit as st

from ui.views import pages

st.title("Diffusion Explorer")
st.markdown(
    "A diffusion model learns to **undo noise**. The *forward process* blurs data into Gaussian noise in $T$ "
    "small random steps; a network is trained to predict, from a noisy $x_t$, the noise that was added (or "
    "equivalently the clean $x_0$). The *reverse process* starts from pure noise $x_T \\sim \\mathcal N(0, I)$ "
    "and applies the network step by step to reach a new sample. Everything here is measured: distances to the "
    "true distribution, always read against the floor a perfect model would reach with the same sample size."
)

st.info(
    "**Notation.** We write what Ho et al. (2020) write: $\\alpha_t = 1 - \\beta_t$ and "
    "$\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s$. Some course notes (this project's first design notes "
    "among them) call these $\\sigma_t$ and $\\bar\\sigma_t$; here $\\sigma$ is kept for noise levels "
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
         r"\varepsilon_\theta(x_t, t) + \sigma_t z,\qquad \sigma_t = \eta\sqrt{\frac{1-\bar\alpha_{t-1}}"
         r"{1-\bar\alpha_t}}\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t-1}}}")

st.header("Phases")
for phase in pages.phases():
    st.page_link(phase.path, label=phase.title, icon=phase.icon)
    st.caption(phase.summary)
