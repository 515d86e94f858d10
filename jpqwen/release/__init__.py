"""Release: NeMo -> Hugging Face export with a parity check, and the handoff
package (model card, manifest, optional publishing) for the SFT/DPO team."""
