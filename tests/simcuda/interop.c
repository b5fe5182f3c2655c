/* OpenGL interoperability: the entry points the real driver exports beyond the toolkit's stub that
 * ffmpeg's CUDA loader requires. The simulated driver has no OpenGL, so no GL context is current. */
#include "config.h"

#include "tests/simcuda/internal.h"

/* cudaGL.h needs <GL/gl.h>; GLuint and GLenum are unsigned int there. */
CUresult cuGLGetDevices_v2(unsigned int *count, CUdevice *devices, unsigned int max, int list);
CUresult cuGraphicsGLRegisterImage(CUgraphicsResource *res, unsigned int image, unsigned int target,
	unsigned int flags);

/* Devices of the current GL context: with no GL context there are none to name. */
SIM_EXPORT CUresult cuGLGetDevices_v2(unsigned int *count, CUdevice *devices, unsigned int max, int list)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (count == NULL || (max > 0 && devices == NULL) || list < 1 || list > 3)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_ERROR_INVALID_GRAPHICS_CONTEXT;
}

/* Registering a GL texture: with no OpenGL no name is a texture. */
SIM_EXPORT CUresult cuGraphicsGLRegisterImage(CUgraphicsResource *res, unsigned int image,
	unsigned int target, unsigned int flags)
{
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	(void)image;
	(void)target;
	if (r != CUDA_SUCCESS)
		return r;
	if (res == NULL || (flags & ~0xfu) != 0)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_ERROR_INVALID_HANDLE;
}
